/**
 * Byte-level helpers shared by the BPE trainer and tests: the reversible byte-to-character
 * map of GPT-2 style tokenizers and the regular expression their `ByteLevel` pre-tokenizer
 * splits text with.
 *
 * @module
 */

/**
 * The split pattern of the `ByteLevel` pre-tokenizer (`use_regex: true`): contractions,
 * letter runs, digit runs and punctuation runs each with an optional leading space, and
 * whitespace runs that leave their last space to the following word.
 */
export const BYTE_LEVEL_SPLIT_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * Builds the byte-to-character table: printable Latin-1 bytes map to themselves and the
 * other 68 bytes to code points from U+0100 upwards, so every byte has a visible,
 * non-whitespace stand-in (space becomes "Ġ", newline "Ċ").
 */
function buildByteTable(): string[] {
  const table = new Array<string>(256);
  let next = 256;
  for (let byte = 0; byte < 256; byte++) {
    const printable =
      (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
    table[byte] = String.fromCharCode(printable ? byte : next++);
  }
  return table;
}

const BYTE_TO_CHAR: readonly string[] = buildByteTable();
const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((ch, byte) => [ch, byte]));

/** The stand-in character of each byte value, indexed by byte (256 entries). */
export function byteLevelAlphabet(): readonly string[] {
  return BYTE_TO_CHAR;
}

/** Maps UTF-8 bytes to their byte-level characters, e.g. `[0x20, 0x61]` -> "Ġa". */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_CHAR[bytes[i]!];
  return out;
}

/** Maps byte-level characters back to bytes; throws on a character outside the alphabet. */
export function byteLevelToBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const byte = CHAR_TO_BYTE.get(text[i]!);
    if (byte === undefined) {
      throw new Error(`byteLevelToBytes: character ${JSON.stringify(text[i])} is not in the byte-level alphabet`);
    }
    out[i] = byte;
  }
  return out;
}

/** Splits text the way the `ByteLevel` pre-tokenizer does (before its byte mapping). */
export function splitByteLevelWords(text: string): string[] {
  return text.match(BYTE_LEVEL_SPLIT_PATTERN) ?? [];
}

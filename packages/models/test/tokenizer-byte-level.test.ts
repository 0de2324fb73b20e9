import { describe, expect, it } from 'vitest';
import { byteLevelAlphabet, bytesToByteLevel, byteLevelToBytes, splitByteLevelWords } from '../src/index.js';

describe('byte-level alphabet', () => {
  const alphabet = byteLevelAlphabet();

  it('gives 256 distinct single characters, none of them whitespace', () => {
    expect(alphabet).toHaveLength(256);
    expect(new Set(alphabet).size).toBe(256);
    for (const ch of alphabet) {
      expect(ch).toHaveLength(1);
      expect(/\s/u.test(ch)).toBe(false);
    }
  });

  it('keeps printable Latin-1 bytes and shifts the rest above U+00FF in byte order', () => {
    const shifted: number[] = [];
    for (let byte = 0; byte < 256; byte++) {
      const code = alphabet[byte]!.charCodeAt(0);
      const printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255);
      if (printable) expect(code).toBe(byte);
      else shifted.push(code);
    }
    expect(shifted).toEqual(Array.from({ length: 68 }, (_, i) => 256 + i));
    expect(alphabet[0x20]).toBe('Ġ');
    expect(alphabet[0x0a]).toBe('Ċ');
    expect(alphabet[0x09]).toBe('ĉ');
  });

  it('maps bytes to characters and back', () => {
    const bytes = new TextEncoder().encode('naïve café 🤗\t\r\n');
    const text = bytesToByteLevel(bytes);
    expect(text).toBe('naÃ¯veĠcafÃ©ĠðŁ¤ĹĉčĊ');
    expect(byteLevelToBytes(text)).toEqual(bytes);
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(byteLevelToBytes(bytesToByteLevel(all))).toEqual(all);
  });

  it('rejects characters outside the alphabet', () => {
    expect(() => byteLevelToBytes('aĀ ')).toThrow(/character " " is not in the byte-level alphabet/);
  });
});

describe('byte-level word split', () => {
  it('splits contractions, letters, digits, punctuation and whitespace runs', () => {
    expect(splitByteLevelWords("He's  here, isn't he? 1999!\n\nOk")).toEqual([
      'He', "'s", ' ', ' here', ',', ' isn', "'t", ' he', '?', ' 1999', '!', '\n', '\n', 'Ok',
    ]);
    expect(splitByteLevelWords('  x  ')).toEqual([' ', ' x', '  ']);
    expect(splitByteLevelWords('')).toEqual([]);
    expect(splitByteLevelWords('ÉTÉ-été')).toEqual(['ÉTÉ', '-', 'été']);
  });
});

/**
 * The tokenizer of a model: loads a Hugging Face `tokenizer.json` (byte-level BPE as in
 * GPT-2 / Llama-3, or SentencePiece-style BPE with byte fallback as in Llama-2 / Mistral /
 * Gemma) and turns text into token ids and back. The pipeline itself (normalizers,
 * pre-tokenizers, BPE, decoders) runs in `@huggingface/tokenizers`; this class checks the
 * document first, owns the special tokens and keeps the API small.
 *
 * @module
 */
import { readFileSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { validateTokenizerJson, TokenizerFormatError, type TokenizerJson } from './tokenizer-json.js';
import { resolveSpecialTokens, type SpecialTokens, type TokenizerConfigJson } from './special-tokens.js';
import { PipelineTokenizer, type Pipeline } from './pipeline.js';

/** Options of `Tokenizer.encode`. */
export interface EncodeOptions {
  /** Prepend the beginning-of-sequence token (default false). */
  addBos?: boolean;
  /** Append the end-of-sequence token (default false). */
  addEos?: boolean;
}

/** Options of `Tokenizer.decode`. */
export interface DecodeOptions {
  /** Drop special tokens (bos, eos, pad, ...) from the text (default false). */
  skipSpecialTokens?: boolean;
}

/** The library's pipeline for a validated document; what the library refuses becomes a TokenizerFormatError. */
function buildPipeline(json: TokenizerJson): Pipeline {
  try {
    return new PipelineTokenizer(json, { clean_up_tokenization_spaces: false });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new TokenizerFormatError(`the tokenizer pipeline cannot be built from this document (${message.slice(0, 200)})`);
  }
}

function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TokenizerFormatError(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TokenizerFormatError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * A text tokenizer built from a Hugging Face `tokenizer.json` document.
 *
 * `encode` never applies the document's post-processor: beginning- and end-of-sequence
 * tokens are added only when asked for with `addBos` / `addEos`. Decoding never applies
 * tokenization-space clean-up, so byte-level tokenizers round-trip text exactly.
 */
export class Tokenizer {
  /** Number of token ids: one more than the largest id in the vocabulary or added tokens. */
  readonly vocabSize: number;
  /** The text of each special token, or null when the tokenizer has none. */
  readonly specialTokens: Readonly<SpecialTokens>;
  /** Id of the beginning-of-sequence token, or null. */
  readonly bosId: number | null;
  /** Id of the end-of-sequence token, or null. */
  readonly eosId: number | null;
  /** Id of the padding token, or null. */
  readonly padId: number | null;
  /** Id of the unknown token, or null. */
  readonly unkId: number | null;

  private readonly json: TokenizerJson;
  private readonly pipeline: Pipeline;
  private readonly idToTokenTable: Map<number, string>;
  private readonly tokenToIdTable: Map<string, number>;

  private constructor(json: TokenizerJson, config: TokenizerConfigJson) {
    this.json = json;
    // The pipeline gets its own copy so nothing it does can change what `save` writes, and no
    // post-processor: encode never adds its special tokens, so it would only be a way to fail.
    this.pipeline = buildPipeline({ ...structuredClone(json), post_processor: null });
    this.tokenToIdTable = new Map(Object.entries(json.model.vocab));
    for (const added of json.added_tokens) this.tokenToIdTable.set(added.content, added.id);
    this.idToTokenTable = new Map();
    for (const [token, id] of this.tokenToIdTable) this.idToTokenTable.set(id, token);
    let maxId = -1;
    for (const id of this.idToTokenTable.keys()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.specialTokens = Object.freeze(resolveSpecialTokens(json, config));
    const idOf = (token: string | null): number | null => (token === null ? null : this.tokenToIdTable.get(token)!);
    this.bosId = idOf(this.specialTokens.bos);
    this.eosId = idOf(this.specialTokens.eos);
    this.padId = idOf(this.specialTokens.pad);
    this.unkId = idOf(this.specialTokens.unk);
  }

  /**
   * Builds a tokenizer from a parsed `tokenizer.json` document (copied, so later changes to
   * `json` do not leak in) and an optional parsed `tokenizer_config.json`.
   * Throws `TokenizerFormatError` for a malformed document.
   */
  static fromJSON(json: unknown, config: TokenizerConfigJson = {}): Tokenizer {
    // Validated before it is copied: the check refuses nesting too deep for structuredClone.
    return new Tokenizer(structuredClone(validateTokenizerJson(json)), config);
  }

  /**
   * Loads `tokenizer.json` from disk. The special tokens come from `configPath` or, when
   * that is not given, from a `tokenizer_config.json` next to the file if there is one.
   */
  static fromFile(path: string, configPath?: string): Tokenizer {
    const json = readJsonFile(path);
    const besideConfig = join(dirname(path), 'tokenizer_config.json');
    const chosenConfig = configPath ?? (existsSync(besideConfig) ? besideConfig : undefined);
    const config = chosenConfig === undefined ? {} : readJsonFile(chosenConfig);
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new TokenizerFormatError(`${chosenConfig} must hold a JSON object`);
    }
    return Tokenizer.fromJSON(json, config as TokenizerConfigJson);
  }

  /** Token ids of `text`, with bos / eos added when asked for. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = text === '' ? [] : this.pipeline.encode(text, { add_special_tokens: false }).ids;
    if (options.addBos) ids.unshift(this.requireSpecial('bos', this.bosId));
    if (options.addEos) ids.push(this.requireSpecial('eos', this.eosId));
    return ids;
  }

  /** Token strings of `text` as the model sees them (no bos / eos). */
  tokenize(text: string): string[] {
    return text === '' ? [] : this.pipeline.encode(text, { add_special_tokens: false }).tokens;
  }

  /** Text of a sequence of token ids; throws `RangeError` for an id with no token. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const list = Array.from(ids);
    for (const id of list) {
      if (!this.idToTokenTable.has(id)) {
        throw new RangeError(`Tokenizer.decode: id ${id} has no token (vocabulary size ${this.vocabSize})`);
      }
    }
    if (list.length === 0) return '';
    return this.pipeline.decode(list, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  /** The id of a token string (vocabulary or added token), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.tokenToIdTable.get(token);
  }

  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.idToTokenTable.get(id);
  }

  /** A copy of the `tokenizer.json` document. */
  toJSON(): TokenizerJson {
    return structuredClone(this.json);
  }

  /** Writes the `tokenizer.json` document to `path` (through a temporary file and a rename). */
  save(path: string): void {
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(this.json, null, 2)}\n`);
    renameSync(temporary, path);
  }

  /**
   * A matching `tokenizer_config.json` document naming the special tokens, for loaders such
   * as transformers' `PreTrainedTokenizerFast`.
   */
  configJSON(modelMaxLength: number): TokenizerConfigJson {
    const { bos, eos, pad, unk } = this.specialTokens;
    return {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: bos,
      eos_token: eos,
      pad_token: pad,
      unk_token: unk,
      model_max_length: modelMaxLength,
      clean_up_tokenization_spaces: false,
    };
  }

  private requireSpecial(role: 'bos' | 'eos', id: number | null): number {
    if (id === null) throw new Error(`Tokenizer.encode: ${role === 'bos' ? 'addBos' : 'addEos'} was asked for but the tokenizer has no ${role} token`);
    return id;
  }
}

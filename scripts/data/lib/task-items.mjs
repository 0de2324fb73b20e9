/**
 * Question and instruction builders for the WordNet task: the pool of usable synsets, the
 * hypernym edges, distractor sampling and the text templates shared by the training pairs
 * and the multiple-choice test.
 *
 * @module
 */
import { POS_NAMES, related, senseRank } from './wordnet.mjs';
import { bestFamiliarLemma } from './familiar.mjs';
import { pick, shuffle } from './random.mjs';

/**
 * @typedef {object} Entry  a synset usable in questions
 * @property {string} id
 * @property {import('./wordnet.mjs').PartOfSpeech} pos
 * @property {string} word        the familiar lemma shown for it
 * @property {string} definition
 * @property {import('./wordnet.mjs').Synset} synset
 */

/** @typedef {{ hypernym: Entry, hyponym: Entry }} Edge */

/**
 * @typedef {object} Question  a 4-choice question
 * @property {string} instruction
 * @property {string} input
 * @property {string[]} choices
 * @property {number} answer    index of the right choice
 * @property {string[]} synsets ids of every synset the question uses (answer, category, distractors)
 */

/** Instructions of the open "define the word" pairs. */
export const DEFINE_INSTRUCTIONS = ['Define the word.', 'What does this word mean?', 'Give the meaning of this word.'];
/** Instructions of the open "which word is defined" pairs. */
export const NAME_INSTRUCTIONS = [
  'Which word matches this definition?',
  'What word has this meaning?',
  'Name the word that fits this definition.',
];
/** Instruction of the multiple-choice definition questions. */
export const CHOOSE_WORD_INSTRUCTION = 'Which word matches this definition?';

/** @param {string} text */
const tokensOf = (text) => text.toLowerCase().split(/[^a-z]+/).filter((t) => t !== '');

/**
 * Whether a definition can be shown in a question: plain text of 3 to 25 words that does
 * not give the answer away (no lemma of the synset, no word sharing a stem with the shown
 * lemma).
 * @param {string} definition
 * @param {string[]} lemmas
 * @param {string} word
 */
export function usableDefinition(definition, lemmas, word) {
  if (definition.includes('"') || definition.includes('`')) return false;
  const tokens = tokensOf(definition);
  if (tokens.length < 3 || tokens.length > 25) return false;
  const padded = ` ${tokens.join(' ')} `;
  if (lemmas.some((lemma) => padded.includes(` ${tokensOf(lemma).join(' ')} `))) return false;
  // Stems of 4 to 6 letters (two letters short of the word) catch "running" for "runner".
  const stems = tokensOf(word)
    .filter((part) => part.length >= 5)
    .map((part) => part.slice(0, Math.max(4, Math.min(part.length - 2, 6))));
  return !tokens.some((token) => stems.some((stem) => token.startsWith(stem)));
}

/** A lemma is shown for a synset only if that synset is among its first senses. */
export const MAX_SENSE_RANK = 1;

/**
 * Synsets with a usable definition and a familiar lemma for which the synset is one of the
 * two most frequent senses (so "drawing" is never shown for the lottery sense), by id in
 * WordNet file order.
 * @param {Map<string, import('./wordnet.mjs').Synset>} synsets
 * @param {Map<string, number>} counts
 * @param {Map<string, string[]>} senseOrder
 * @returns {Map<string, Entry>}
 */
export function buildPool(synsets, counts, senseOrder) {
  /** @type {Map<string, Entry>} */
  const pool = new Map();
  for (const synset of synsets.values()) {
    const primary = synset.words.filter((lemma) => senseRank(senseOrder, lemma, synset) <= MAX_SENSE_RANK);
    const word = bestFamiliarLemma(primary, counts);
    if (word === null || !usableDefinition(synset.definition, synset.words, word)) continue;
    pool.set(synset.id, { id: synset.id, pos: synset.pos, word, definition: synset.definition, synset });
  }
  return pool;
}

/**
 * Noun and verb hypernym edges between pool entries whose shown words share no word
 * (so "hunting dog" is never asked as a kind of "dog").
 * @param {Map<string, Entry>} pool
 * @returns {Edge[]}
 */
export function hypernymEdges(pool) {
  /** @type {Edge[]} */
  const edges = [];
  for (const hyponym of pool.values()) {
    if (hyponym.pos !== 'n' && hyponym.pos !== 'v') continue;
    for (const target of related(hyponym.synset, '@')) {
      const hypernym = pool.get(target);
      if (hypernym === undefined) continue;
      const shared = tokensOf(hypernym.word).some((t) => tokensOf(hyponym.word).includes(t));
      if (!shared) edges.push({ hypernym, hyponym });
    }
  }
  return edges;
}

/**
 * Memoised sets of all synsets below a synset (hyponyms and instances, transitively).
 * @param {Map<string, import('./wordnet.mjs').Synset>} synsets
 * @returns {(id: string) => Set<string>}
 */
export function descendantsOf(synsets) {
  /** @type {Map<string, Set<string>>} */
  const memo = new Map();
  return (id) => {
    let found = memo.get(id);
    if (found !== undefined) return found;
    found = new Set();
    const stack = [id];
    while (stack.length > 0) {
      const synset = synsets.get(/** @type {string} */ (stack.pop()));
      if (synset === undefined) continue;
      for (const child of [...related(synset, '~'), ...related(synset, '~i')]) {
        if (!found.has(child)) {
          found.add(child);
          stack.push(child);
        }
      }
    }
    memo.set(id, found);
    return found;
  };
}

/**
 * Up to `count` distinct-word entries from `candidates` that pass `accept`, drawn at random.
 * @param {Entry[]} candidates
 * @param {number} count
 * @param {(entry: Entry) => boolean} accept
 * @param {() => number} random
 * @returns {Entry[] | null} null when not enough are found
 */
export function sampleDistractors(candidates, count, accept, random) {
  /** @type {Entry[]} */
  const chosen = [];
  for (let attempt = 0; attempt < 400 && chosen.length < count; attempt++) {
    const entry = pick(candidates, random);
    if (chosen.some((c) => c.word === entry.word) || !accept(entry)) continue;
    chosen.push(entry);
  }
  return chosen.length === count ? chosen : null;
}

/**
 * Puts the answer among the distractors at a random place.
 * @param {Entry} answer
 * @param {Entry[]} distractors
 * @param {() => number} random
 */
function arrange(answer, distractors, random) {
  const order = shuffle([answer, ...distractors], random);
  return { choices: order.map((e) => e.word), answer: order.indexOf(answer), synsets: order.map((e) => e.id) };
}

/** @param {string[]} words */
const optionsLine = (words) => `Options: ${words.join(', ')}`;

/**
 * A "which word matches this definition" question with distractors of the same part of speech.
 * @param {Entry} entry
 * @param {Entry[]} samePos  candidates for distractors
 * @param {() => number} random
 * @returns {Question | null}
 */
export function chooseWordQuestion(entry, samePos, random) {
  const lemmas = new Set(entry.synset.words.map((w) => w.toLowerCase()));
  const distractors = sampleDistractors(samePos, 3, (d) => d.id !== entry.id && !lemmas.has(d.word), random);
  if (distractors === null) return null;
  const { choices, answer, synsets } = arrange(entry, distractors, random);
  return { instruction: CHOOSE_WORD_INSTRUCTION, input: `${entry.definition}\n${optionsLine(choices)}`, choices, answer, synsets };
}

/**
 * The category phrase of a hypernym: "a kind of X" for nouns, "a way to X" for verbs.
 * @param {Entry} hypernym
 */
export const categoryPhrase = (hypernym) => (hypernym.pos === 'v' ? `a way to ${hypernym.word}` : `a kind of ${hypernym.word}`);

/**
 * A "which of these is a kind of X" question; no distractor word may name anything below X.
 * @param {Edge} edge
 * @param {Entry[]} samePos  candidates for distractors
 * @param {(id: string) => Set<string>} descendants
 * @param {Map<string, string[]>} lemmaSynsets  lower-cased lemma -> synset ids
 * @param {() => number} random
 * @returns {Question | null}
 */
export function chooseKindQuestion(edge, samePos, descendants, lemmaSynsets, random) {
  const { hypernym, hyponym } = edge;
  const below = descendants(hypernym.id);
  const categoryTokens = tokensOf(hypernym.word);
  const accept = (/** @type {Entry} */ d) =>
    d.word !== hyponym.word &&
    !tokensOf(d.word).some((t) => categoryTokens.includes(t)) &&
    (lemmaSynsets.get(d.word) ?? []).every((id) => id !== hypernym.id && !below.has(id));
  const distractors = sampleDistractors(samePos, 3, accept, random);
  if (distractors === null) return null;
  const { choices, answer, synsets } = arrange(hyponym, distractors, random);
  return {
    instruction: `Which of these is ${categoryPhrase(hypernym)}?`,
    input: optionsLine(choices),
    choices,
    answer,
    synsets: [hypernym.id, ...synsets],
  };
}

/** Readable part of speech of an entry. */
export const posName = (/** @type {Entry} */ entry) => POS_NAMES[entry.pos];

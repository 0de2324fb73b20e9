#!/usr/bin/env node
/**
 * Builds the pretraining corpus from the Brown corpus and WordNet 3.1 glosses:
 *   packages/blora/assets/corpus/train.txt    Brown training files + WordNet gloss lines
 *   packages/blora/assets/corpus/heldout.txt  the held-out Brown files (5%, all genres)
 * Brown documents become paragraphs of running text. Each WordNet synset with a familiar
 * lemma becomes a dictionary line "lemma, lemma: gloss" and a reverse-dictionary line
 * "definition: lemma, lemma"; each noun or verb synset with familiar hyponyms becomes a
 * category line "kinds of X: a, b, c" ("ways to X: ..." for verbs). A causal language model
 * learns a fact in the direction it reads it (it does not infer "definition -> word" from
 * "word: definition"), so the facts the test asks about appear in both directions. Documents
 * and blocks of such lines are shuffled together with a fixed seed, so the output is the same
 * on every run.
 *
 * Usage: node scripts/data/build-corpus.mjs
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brownWordCounts, readBrownParagraphs, splitBrownFiles } from './lib/brown.mjs';
import { loadWordNet } from './lib/wordnet.mjs';
import { bestFamiliarLemma, isFamiliarLemma } from './lib/familiar.mjs';
import { seededRandom, shuffle } from './lib/random.mjs';

const SEED = 20240601;
const GLOSS_BLOCK_LINES = 50;
const outDir = join(import.meta.dirname, '..', '..', 'packages', 'blora', 'assets', 'corpus');

/** @param {string} text */
function stats(text) {
  return {
    bytes: Buffer.byteLength(text),
    words: text.split(/\s+/).filter((w) => w !== '').length,
    lines: text.split('\n').filter((l) => l !== '').length,
  };
}

const started = Date.now();
const random = seededRandom(SEED);
const { train, heldout } = splitBrownFiles();
const document = (/** @type {string} */ file) => readBrownParagraphs(file).join('\n');
const brownTrain = train.map(document);
const brownHeldout = heldout.map(document);

const counts = brownWordCounts(train);
const wordnet = loadWordNet();
const familiar = (/** @type {import('./lib/wordnet.mjs').Synset} */ synset) =>
  synset.words.some((lemma) => isFamiliarLemma(lemma, counts));
const glossLines = [];
const reverseLines = [];
const categoryLines = [];
for (const synset of wordnet.values()) {
  if (!familiar(synset)) continue;
  glossLines.push(`${synset.words.join(', ')}: ${synset.gloss}`);
  reverseLines.push(`${synset.definition}: ${synset.words.join(', ')}`);
  if (synset.pos !== 'n' && synset.pos !== 'v') continue;
  const members = [];
  for (const pointer of synset.pointers) {
    if (pointer.symbol !== '~') continue;
    const hyponym = wordnet.get(pointer.target);
    if (hyponym === undefined || !familiar(hyponym)) continue;
    members.push(bestFamiliarLemma(hyponym.words, counts));
  }
  if (members.length === 0) continue;
  const head = bestFamiliarLemma(synset.words, counts);
  categoryLines.push(`${synset.pos === 'v' ? 'ways to' : 'kinds of'} ${head}: ${members.join(', ')}`);
}
const glossBlocks = [];
for (const lines of [glossLines, reverseLines, categoryLines]) {
  shuffle(lines, random);
  for (let i = 0; i < lines.length; i += GLOSS_BLOCK_LINES) {
    glossBlocks.push(lines.slice(i, i + GLOSS_BLOCK_LINES).join('\n'));
  }
}

const trainText = `${shuffle([...brownTrain, ...glossBlocks], random).join('\n\n')}\n`;
const heldoutText = `${brownHeldout.join('\n\n')}\n`;
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'train.txt'), trainText);
writeFileSync(join(outDir, 'heldout.txt'), heldoutText);

const brownStats = stats(brownTrain.join('\n\n'));
const glossStats = stats(glossLines.join('\n'));
console.log(`Brown files: ${train.length} train, ${heldout.length} held out (${heldout.join(' ')})`);
console.log(`train.txt:   ${JSON.stringify(stats(trainText))}`);
console.log(`  Brown part: ${JSON.stringify(brownStats)}`);
console.log(`  WordNet glosses: ${glossLines.length} synsets ${JSON.stringify(glossStats)}`);
console.log(`  reverse-dictionary lines: ${reverseLines.length}, category lines: ${categoryLines.length}`);
console.log(`heldout.txt: ${JSON.stringify(stats(heldoutText))}`);
console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);

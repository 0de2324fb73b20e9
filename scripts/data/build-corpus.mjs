#!/usr/bin/env node
/**
 * Builds the pretraining corpus from the Brown corpus and WordNet 3.1 glosses:
 *   packages/blora/assets/corpus/train.txt    Brown training files + WordNet gloss lines
 *   packages/blora/assets/corpus/heldout.txt  the held-out Brown files (5%, all genres)
 * Brown documents become paragraphs of running text; each WordNet synset with a familiar
 * lemma becomes a line "lemma, lemma: gloss". Documents and blocks of gloss lines are
 * shuffled together with a fixed seed, so the output is the same on every run.
 *
 * Usage: node scripts/data/build-corpus.mjs
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brownWordCounts, readBrownParagraphs, splitBrownFiles } from './lib/brown.mjs';
import { loadWordNet } from './lib/wordnet.mjs';
import { isFamiliarLemma } from './lib/familiar.mjs';
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
const glossLines = [];
for (const synset of loadWordNet().values()) {
  if (!synset.words.some((lemma) => isFamiliarLemma(lemma, counts))) continue;
  glossLines.push(`${synset.words.join(', ')}: ${synset.gloss}`);
}
shuffle(glossLines, random);
const glossBlocks = [];
for (let i = 0; i < glossLines.length; i += GLOSS_BLOCK_LINES) {
  glossBlocks.push(glossLines.slice(i, i + GLOSS_BLOCK_LINES).join('\n'));
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
console.log(`heldout.txt: ${JSON.stringify(stats(heldoutText))}`);
console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);

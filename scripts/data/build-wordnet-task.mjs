#!/usr/bin/env node
/**
 * Builds the WordNet instruction-tuning set and its held-out 4-choice test:
 *   packages/blora/assets/wordnet-task/train.jsonl    Alpaca pairs {instruction, input, output}
 *   packages/blora/assets/wordnet-task/test-mc.jsonl  4-choice questions
 *   packages/blora/assets/wordnet-task/test-mc-cloze.jsonl  the same questions in cloze form: the
 *     options are scored but not listed in the prompt, which asks as the open training pairs do
 * Synsets are split before any item is made: a synset used by a test question (as answer,
 * category or distractor) never appears in a training pair, and the reverse. The script
 * checks this, and that no test prompt occurs among the training prompts, before writing.
 *
 * Usage: node scripts/data/build-wordnet-task.mjs
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brownWordCounts, splitBrownFiles } from './lib/brown.mjs';
import { lemmaIndex, loadSenseOrder, loadWordNet } from './lib/wordnet.mjs';
import { seededRandom, shuffle, pick } from './lib/random.mjs';
import {
  buildPool,
  hypernymEdges,
  descendantsOf,
  chooseWordQuestion,
  chooseKindQuestion,
  categoryPhrase,
  posName,
  DEFINE_INSTRUCTIONS,
  NAME_INSTRUCTIONS,
} from './lib/task-items.mjs';

const SEED = 1234;
const TEST_KIND_QUESTIONS = 250;
const TEST_DEFINITION_QUESTIONS = 250;
const TEST_FRACTION = 0.1;
const TRAIN_COUNTS = { define: 1500, name: 1500, kind: 800, general: 600, chooseWord: 1000, chooseKind: 600 };
const outDir = join(import.meta.dirname, '..', '..', 'packages', 'blora', 'assets', 'wordnet-task');

/** @typedef {import('./lib/task-items.mjs').Entry} Entry */
/** @typedef {import('./lib/task-items.mjs').Edge} Edge */

const started = Date.now();
const random = seededRandom(SEED);
const synsets = loadWordNet();
const counts = brownWordCounts(splitBrownFiles().train);
const lemmaSynsets = lemmaIndex(synsets);
const descendants = descendantsOf(synsets);
const pool = buildPool(synsets, counts, loadSenseOrder());
const edges = hypernymEdges(pool);

// ---- split the synsets: test hypernym edges first, then random synsets up to the fraction
/** @type {Set<string>} */
const testIds = new Set();
/** @type {Edge[]} */
const testEdges = [];
const usedCategories = new Set();
for (const edge of shuffle([...edges], random)) {
  if (testEdges.length >= TEST_KIND_QUESTIONS * 1.5) break;
  const { hypernym, hyponym } = edge;
  if (usedCategories.has(hypernym.word) || testIds.has(hypernym.id) || testIds.has(hyponym.id)) continue;
  usedCategories.add(hypernym.word);
  testIds.add(hypernym.id);
  testIds.add(hyponym.id);
  testEdges.push(edge);
}
const testTarget = Math.round(pool.size * TEST_FRACTION);
for (const id of shuffle([...pool.keys()], random)) {
  if (testIds.size >= testTarget) break;
  testIds.add(id);
}
/** @param {(entry: Entry) => boolean} inSplit */
const entriesByPos = (inSplit) => {
  /** @type {Record<string, Entry[]>} */
  const byPos = { n: [], v: [], a: [], r: [] };
  for (const entry of pool.values()) if (inSplit(entry)) byPos[entry.pos].push(entry);
  return byPos;
};
const testByPos = entriesByPos((e) => testIds.has(e.id));
const trainByPos = entriesByPos((e) => !testIds.has(e.id));
const trainEntries = Object.values(trainByPos).flat();
const trainEdges = edges.filter((e) => !testIds.has(e.hypernym.id) && !testIds.has(e.hyponym.id));

// ---- test questions
const testItems = [];
/** @type {Set<string>} */
const testUsed = new Set();
for (const edge of testEdges) {
  if (testItems.filter((q) => q.kind === 'kind-of').length >= TEST_KIND_QUESTIONS) break;
  const question = chooseKindQuestion(edge, testByPos[edge.hyponym.pos], descendants, lemmaSynsets, random);
  if (question === null) continue;
  testItems.push({ kind: 'kind-of', pos: posName(edge.hyponym), ...question });
}
const testEdgeIds = new Set(testEdges.flatMap((e) => [e.hypernym.id, e.hyponym.id]));
const definitionCandidates = shuffle(Object.values(testByPos).flat().filter((e) => !testEdgeIds.has(e.id)), random);
for (const entry of definitionCandidates) {
  if (testItems.length >= TEST_KIND_QUESTIONS + TEST_DEFINITION_QUESTIONS) break;
  const question = chooseWordQuestion(entry, testByPos[entry.pos], random);
  if (question !== null) testItems.push({ kind: 'definition-to-word', pos: posName(entry), ...question });
}
shuffle(testItems, random);
const testRecords = testItems.map((item, index) => {
  item.synsets.forEach((id) => testUsed.add(id));
  return {
    id: `wn-test-${String(index + 1).padStart(4, '0')}`,
    kind: item.kind,
    pos: item.pos,
    question: `${item.instruction}\n${item.input}`,
    instruction: item.instruction,
    input: item.input,
    choices: item.choices,
    answer: item.answer,
    synsets: item.synsets,
  };
});

// ---- training pairs
/** @type {Array<{ instruction: string, input: string, output: string }>} */
const trainRecords = [];
/** @type {Set<string>} */
const trainUsed = new Set();
/** @param {number} n @param {Entry[] | Edge[]} items */
const take = (n, items) => shuffle([...items], random).slice(0, n);
for (const entry of take(TRAIN_COUNTS.define, trainEntries)) {
  trainUsed.add(entry.id);
  trainRecords.push({ instruction: pick(DEFINE_INSTRUCTIONS, random), input: entry.word, output: entry.definition });
}
for (const entry of take(TRAIN_COUNTS.name, trainEntries)) {
  trainUsed.add(entry.id);
  trainRecords.push({ instruction: pick(NAME_INSTRUCTIONS, random), input: entry.definition, output: entry.word });
}
for (const { hypernym, hyponym } of /** @type {Edge[]} */ (take(TRAIN_COUNTS.kind, trainEdges))) {
  trainUsed.add(hypernym.id).add(hyponym.id);
  trainRecords.push({ instruction: `Name ${categoryPhrase(hypernym)}.`, input: '', output: hyponym.word });
}
for (const { hypernym, hyponym } of /** @type {Edge[]} */ (take(TRAIN_COUNTS.general, trainEdges))) {
  trainUsed.add(hypernym.id).add(hyponym.id);
  const instruction = hyponym.pos === 'v' ? 'What is this a way to do?' : 'What is this a kind of?';
  trainRecords.push({ instruction, input: hyponym.word, output: hypernym.word });
}
let made = 0;
for (const entry of take(trainEntries.length, trainEntries)) {
  if (made >= TRAIN_COUNTS.chooseWord) break;
  const question = chooseWordQuestion(entry, trainByPos[entry.pos], random);
  if (question === null) continue;
  question.synsets.forEach((id) => trainUsed.add(id));
  trainRecords.push({ instruction: question.instruction, input: question.input, output: question.choices[question.answer] });
  made++;
}
made = 0;
for (const edge of /** @type {Edge[]} */ (take(trainEdges.length, trainEdges))) {
  if (made >= TRAIN_COUNTS.chooseKind) break;
  const question = chooseKindQuestion(edge, trainByPos[edge.hyponym.pos], descendants, lemmaSynsets, random);
  if (question === null) continue;
  question.synsets.forEach((id) => trainUsed.add(id));
  trainRecords.push({ instruction: question.instruction, input: question.input, output: question.choices[question.answer] });
  made++;
}
shuffle(trainRecords, random);

// The cloze form of each question: same choices and answer, prompt without the options line
// ("Which word matches this definition?" + the definition; "Name a kind of X.").
const clozeRecords = testRecords.map((r) => {
  const kindOf = /^Which of these is (.+)\?$/.exec(r.instruction);
  const instruction = kindOf ? `Name ${kindOf[1]}.` : r.instruction;
  const input = kindOf ? '' : r.input.replace(/\nOptions: .*$/s, '');
  return { ...r, question: input ? `${instruction}\n${input}` : instruction, instruction, input };
});

// ---- checks
const overlap = [...testUsed].filter((id) => trainUsed.has(id));
if (overlap.length > 0) throw new Error(`train and test share ${overlap.length} synsets, e.g. ${overlap.slice(0, 5).join(' ')}`);
if ([...testUsed].some((id) => !testIds.has(id))) throw new Error('a test question uses a synset outside the test split');
const trainPrompts = new Set(trainRecords.map((r) => `${r.instruction}\n${r.input}`));
const leaked = testRecords.filter((r) => trainPrompts.has(`${r.instruction}\n${r.input}`));
// A cloze prompt may equal a training prompt ("Name a kind of joke." asks for many members);
// what must not occur is that prompt with the test's answer.
const trainPairs = new Set(trainRecords.map((r) => `${r.instruction}\n${r.input}\n${r.output}`));
const clozeShared = clozeRecords.filter((r) => trainPrompts.has(`${r.instruction}\n${r.input}`));
const clozeLeaked = clozeRecords.filter((r) => trainPairs.has(`${r.instruction}\n${r.input}\n${r.choices[r.answer]}`));
if (clozeLeaked.length > 0) throw new Error(`${clozeLeaked.length} cloze questions occur in training with their answer, e.g. ${JSON.stringify(clozeLeaked[0])}`);
if (leaked.length > 0) throw new Error(`${leaked.length} test prompts also occur in training, e.g. ${JSON.stringify(leaked[0])}`);
for (const r of testRecords) {
  if (r.choices.length !== 4 || new Set(r.choices).size !== 4 || !(r.answer >= 0 && r.answer < 4)) {
    throw new Error(`malformed test question ${r.id}`);
  }
}

// ---- write
const jsonl = (/** @type {unknown[]} */ rows) => rows.map((row) => JSON.stringify(row)).join('\n') + '\n';
mkdirSync(outDir, { recursive: true });
const trainText = jsonl(trainRecords);
const testText = jsonl(testRecords);
writeFileSync(join(outDir, 'train.jsonl'), trainText);
writeFileSync(join(outDir, 'test-mc.jsonl'), testText);
writeFileSync(join(outDir, 'test-mc-cloze.jsonl'), jsonl(clozeRecords));

const tally = (/** @type {string[]} */ keys) => keys.reduce((acc, k) => ({ ...acc, [k]: (acc[k] ?? 0) + 1 }), /** @type {Record<string, number>} */ ({}));
console.log(`WordNet: ${synsets.size} synsets; pool ${pool.size} (familiar lemma, usable definition); ${edges.length} hypernym edges`);
console.log(`split: ${testIds.size} test synsets, ${pool.size - testIds.size} train synsets; ${trainEdges.length} train edges`);
console.log(`train.jsonl: ${trainRecords.length} pairs, ${Buffer.byteLength(trainText)} bytes`);
console.log(`test-mc.jsonl: ${testRecords.length} questions, ${Buffer.byteLength(testText)} bytes (and test-mc-cloze.jsonl, the same in cloze form; ${clozeShared.length} of its prompts also ask for other members in training)`);
console.log(`  by kind ${JSON.stringify(tally(testRecords.map((r) => r.kind)))}, by pos ${JSON.stringify(tally(testRecords.map((r) => r.pos)))}`);
console.log(`  answer positions ${JSON.stringify(tally(testRecords.map((r) => String(r.answer))))}`);
console.log(`synsets used: ${trainUsed.size} train, ${testUsed.size} test, shared 0`);
console.log('example test question:', JSON.stringify(testRecords[0]));
console.log('example training pair:', JSON.stringify(trainRecords[0]));
console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);

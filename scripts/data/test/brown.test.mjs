import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detokenize, untag, splitBrownFiles, brownFiles, readBrownParagraphs } from '../lib/brown.mjs';

test('untag keeps everything before the last slash', () => {
  assert.equal(untag('The/at'), 'The');
  assert.equal(untag("Atlanta's/np$"), "Atlanta's");
  assert.equal(untag('1/2/cd'), '1/2');
  assert.equal(untag('./.'), '.');
});

test('detokenize spaces punctuation, brackets and quotes', () => {
  const words = ['He', 'said', '``', 'no', "''", ',', 'and', '(', 'twice', ')', 'left', '.'];
  assert.equal(detokenize(words), 'He said "no", and (twice) left.');
  assert.equal(detokenize(['It', 'cost', '$', '5', '--', 'or', 'so', ';', ';', 'really', '?', '?']), 'It cost $5 -- or so; really?');
  assert.equal(detokenize(['Mr.', 'Allen', 'Jr.', '.']), 'Mr. Allen Jr.');
  assert.equal(detokenize(['a', "'", 'quoted', "'", 'word']), "a 'quoted' word");
});

test('reads the first file of the corpus as paragraphs', () => {
  const paragraphs = readBrownParagraphs('ca01');
  assert.ok(paragraphs[0].startsWith('The Fulton County Grand Jury said Friday an investigation of'));
  assert.ok(paragraphs[0].endsWith('produced "no evidence" that any irregularities took place.'));
  assert.ok(paragraphs.every((p) => !p.includes('/') || /\d\/\d/.test(p)));
});

test('holds out every 20th file: 25 files over all genres, disjoint from training', () => {
  const files = brownFiles();
  assert.equal(files.length, 500);
  const { train, heldout } = splitBrownFiles(files);
  assert.equal(heldout.length, 25);
  assert.equal(train.length, 475);
  assert.ok(heldout.every((f) => !train.includes(f)));
  assert.ok(new Set(heldout.map((f) => f[1])).size >= 12);
});

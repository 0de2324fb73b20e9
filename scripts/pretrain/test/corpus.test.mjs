import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SequenceOrder, heldOutWindows, splitDocuments, tokenizeCorpus, unigramBaseline } from '../lib/corpus.mjs';

/** A stand-in tokenizer: one id per character (its code), bos 1, eos 2. */
const charTokenizer = { bosId: 1, eosId: 2, encode: (/** @type {string} */ text) => [...text].map((c) => c.charCodeAt(0)) };

test('documents are the blocks between blank lines, trimmed, empty ones dropped', () => {
  assert.deepEqual(splitDocuments('a b\nc\n\n\n  \n d \n\ne'), ['a b\nc', 'd', 'e']);
  assert.deepEqual(splitDocuments('\n\n'), []);
});

test('tokenizeCorpus frames each document with bos and eos and caches the ids', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pretrain-corpus-'));
  try {
    const text = join(dir, 'text.txt');
    const tok = join(dir, 'tokenizer.json');
    writeFileSync(text, 'ab\n\ncd\ne\n');
    writeFileSync(tok, '{}');
    const first = tokenizeCorpus(charTokenizer, text, tok, join(dir, 'cache'));
    assert.equal(first.cached, false);
    assert.equal(first.documents, 2);
    assert.deepEqual([...first.ids], [1, 97, 98, 2, 1, 99, 100, 10, 101, 2]);
    const second = tokenizeCorpus(charTokenizer, text, tok, join(dir, 'cache'));
    assert.equal(second.cached, true);
    assert.deepEqual([...second.ids], [...first.ids]);
    // A different tokenizer file is a different cache entry.
    writeFileSync(tok, '{"changed": true}');
    assert.equal(tokenizeCorpus(charTokenizer, text, tok, join(dir, 'cache')).cached, false);
    assert.equal(readdirSync(join(dir, 'cache')).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('each pass of the sequence order visits every sequence once, seeded and fixed by the step', () => {
  const ids = Uint16Array.from({ length: 7 * 5 + 3 }, (_, i) => i);
  const order = new SequenceOrder(ids, 5, 11);
  assert.equal(order.count, 7);
  // Batches of 3 over two passes (steps 0..4 cover sequences 0..14 of the global order).
  const starts = [];
  for (let step = 0; step < 5; step++) {
    const batch = order.batchAt(step, 3);
    assert.equal(batch.length, 15);
    for (let b = 0; b < 3; b++) {
      const row = [...batch.subarray(b * 5, b * 5 + 5)];
      assert.equal(row[0] % 5, 0);
      assert.deepEqual(row, [0, 1, 2, 3, 4].map((k) => row[0] + k));
      starts.push(row[0] / 5);
    }
  }
  assert.deepEqual([...starts.slice(0, 7)].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...starts.slice(7, 14)].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  assert.notDeepEqual(starts.slice(0, 7), starts.slice(7, 14));
  // The same step gives the same batch in a fresh order (what makes resuming exact); another seed differs.
  assert.deepEqual([...new SequenceOrder(ids, 5, 11).batchAt(3, 3)], [...order.batchAt(3, 3)]);
  const other = new SequenceOrder(ids, 5, 12);
  assert.notDeepEqual(Array.from({ length: 3 }, (_, s) => [...other.batchAt(s, 3)]), Array.from({ length: 3 }, (_, s) => [...order.batchAt(s, 3)]));
  assert.throws(() => new SequenceOrder(Uint16Array.from([1, 2]), 5, 0), /shorter than one sequence/);
});

test('held-out windows predict every token after the first exactly once', () => {
  for (const [n, length] of [[10, 4], [11, 4], [2, 4], [5, 2], [1, 3]]) {
    const ids = Uint16Array.from({ length: n }, (_, i) => i);
    const windows = heldOutWindows(ids, length);
    const predicted = windows.flatMap((w) => w.slice(1));
    assert.deepEqual(predicted, Array.from({ length: Math.max(0, n - 1) }, (_, i) => i + 1), `n ${n}, length ${length}`);
    assert.ok(windows.every((w) => w.length >= 2 && w.length <= length));
  }
});

test('the unigram baseline is the add-one smoothed estimate scored on the held-out tokens after the first', () => {
  const train = Uint16Array.from([0, 0, 1, 2, 0]);
  const held = Uint16Array.from([3, 0, 1, 3]);
  const vocab = 4;
  // p(w) = (count + 1) / (5 + 4): p0 = 4/9, p1 = 2/9, p3 = 1/9.
  const expected = -(Math.log(4 / 9) + Math.log(2 / 9) + Math.log(1 / 9)) / 3;
  const result = unigramBaseline(train, held, vocab);
  assert.equal(result.tokens, 3);
  assert.ok(Math.abs(result.loss - expected) < 1e-12);
  assert.ok(Math.abs(result.perplexity - Math.exp(expected)) < 1e-9);
});

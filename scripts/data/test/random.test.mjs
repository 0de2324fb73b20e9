import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom, shuffle } from '../lib/random.mjs';

test('seeded generator repeats its sequence and stays in [0, 1)', () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const values = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(values, Array.from({ length: 1000 }, () => b()));
  assert.ok(values.every((v) => v >= 0 && v < 1));
  assert.notDeepEqual(values.slice(0, 5), Array.from({ length: 5 }, seededRandom(43)));
});

test('shuffle is a seeded permutation', () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const once = shuffle([...items], seededRandom(7));
  assert.deepEqual(once, shuffle([...items], seededRandom(7)));
  assert.deepEqual([...once].sort((x, y) => x - y), items);
  assert.notDeepEqual(once, items);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { usableDefinition, chooseWordQuestion, chooseKindQuestion, descendantsOf, hypernymEdges } from '../lib/task-items.mjs';
import { seededRandom } from '../lib/random.mjs';

test('definitions that name the answer or are too short are not usable', () => {
  assert.equal(usableDefinition('a domesticated carnivorous mammal', ['dog', 'domestic dog'], 'dog'), true);
  assert.equal(usableDefinition('a dog kept at home', ['dog'], 'dog'), false);
  assert.equal(usableDefinition('the act of running fast', ['runner'], 'runner'), false); // shares "runn"
  assert.equal(usableDefinition('the act of electing a leader', ['election'], 'election'), false); // "electi"
  assert.equal(usableDefinition('a device that is used for cutting', ['knife'], 'knife'), true);
  assert.equal(usableDefinition('very big', ['huge'], 'huge'), false);
  assert.equal(usableDefinition('as in "carrot and stick" for sure', ['carrot'], 'lure'), false);
});

// A small taxonomy: animal > dog > puppy, animal > cat; tool > hammer; plus "hot dog" (food).
const synset = (id, words, pointers = []) => ({ id, pos: 'n', ssType: 'n', lexFilenum: 0, words, pointers, gloss: '', definition: '', examples: [] });
const down = (target) => ({ symbol: '~', target, source: 0, targetWord: 0 });
const up = (target) => ({ symbol: '@', target, source: 0, targetWord: 0 });
const synsets = new Map(
  [
    synset('n1', ['animal'], [down('n2'), down('n3')]),
    synset('n2', ['dog'], [up('n1'), down('n4')]),
    synset('n3', ['cat'], [up('n1')]),
    synset('n4', ['puppy'], [up('n2')]),
    synset('n5', ['tool'], [down('n6')]),
    synset('n6', ['hammer'], [up('n5')]),
    synset('n7', ['hot dog']),
    synset('n8', ['spoon']),
    synset('n9', ['chair']),
    synset('n10', ['lamp']),
  ].map((s) => [s.id, s]),
);
const entry = (id) => ({ id, pos: 'n', word: synsets.get(id).words[0], definition: `definition of ${id}`, synset: synsets.get(id) });
const pool = new Map([...synsets.keys()].map((id) => [id, entry(id)]));
const lemmaSynsets = new Map([...synsets.values()].map((s) => [s.words[0], [s.id]]));

test('hypernym edges and descendants follow the pointers', () => {
  const edges = hypernymEdges(pool).map((e) => `${e.hyponym.word}<${e.hypernym.word}`);
  assert.deepEqual(edges.sort(), ['cat<animal', 'dog<animal', 'hammer<tool', 'puppy<dog']);
  assert.deepEqual([...descendantsOf(synsets)('n1')].sort(), ['n2', 'n3', 'n4']);
});

test('kind-of distractors never name something below the category or repeat its word', () => {
  const descendants = descendantsOf(synsets);
  const candidates = [...pool.values()];
  for (let seed = 1; seed <= 30; seed++) {
    const q = chooseKindQuestion({ hypernym: entry('n2'), hyponym: entry('n4') }, candidates, descendants, lemmaSynsets, seededRandom(seed));
    assert.ok(q !== null);
    assert.equal(q.instruction, 'Which of these is a kind of dog?');
    assert.equal(q.choices[q.answer], 'puppy');
    assert.equal(new Set(q.choices).size, 4);
    for (const [i, word] of q.choices.entries()) {
      if (i !== q.answer) assert.ok(!['puppy', 'dog', 'hot dog'].includes(word), word);
    }
    assert.equal(q.input, `Options: ${q.choices.join(', ')}`);
  }
});

test('definition questions put the answer among three other words at a seeded place', () => {
  const answers = new Set();
  for (let seed = 1; seed <= 30; seed++) {
    const q = chooseWordQuestion(entry('n6'), [...pool.values()], seededRandom(seed));
    assert.ok(q !== null);
    assert.equal(q.choices[q.answer], 'hammer');
    assert.equal(new Set(q.choices).size, 4);
    assert.equal(q.input, `definition of n6\nOptions: ${q.choices.join(', ')}`);
    answers.add(q.answer);
  }
  assert.equal(answers.size, 4);
  assert.equal(chooseWordQuestion(entry('n6'), [entry('n6'), entry('n7')], seededRandom(1)), null);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDataLine, splitGloss } from '../lib/wordnet.mjs';

test('parses a noun line: words, pointers and gloss', () => {
  const line =
    '00002137 03 n 02 abstraction 0 abstract_entity 0 003 @ 00001740 n 0000 + 00694095 v 0101 ~ 00023280 n 0000 | a general concept formed by extracting common features from specific examples  ';
  const synset = parseDataLine(line);
  assert.deepEqual(synset, {
    id: 'n00002137',
    pos: 'n',
    ssType: 'n',
    lexFilenum: 3,
    words: ['abstraction', 'abstract entity'],
    pointers: [
      { symbol: '@', target: 'n00001740', source: 0, targetWord: 0 },
      { symbol: '+', target: 'v00694095', source: 1, targetWord: 1 },
      { symbol: '~', target: 'n00023280', source: 0, targetWord: 0 },
    ],
    gloss: 'a general concept formed by extracting common features from specific examples',
    definition: 'a general concept formed by extracting common features from specific examples',
    examples: [],
  });
});

test('reads the word count in hex, strips adjective markers and skips verb frames', () => {
  const words = Array.from({ length: 11 }, (_, i) => `w${i} 0`).join(' ');
  const noun = parseDataLine(`00000001 03 n 0b ${words} 000 | many words`);
  assert.equal(noun?.words.length, 11);
  const adj = parseDataLine('00002312 00 s 01 abaxial(a) 0 001 & 00002098 a 0000 | facing away from the axis; "the abaxial surface of a leaf"');
  assert.equal(adj?.pos, 'a');
  assert.deepEqual(adj?.words, ['abaxial']);
  assert.deepEqual(adj?.pointers[0], { symbol: '&', target: 'a00002098', source: 0, targetWord: 0 });
  const verb = parseDataLine('00001740 29 v 01 breathe 0 001 @ 00002325 v 0000 02 + 02 00 + 08 00 | draw air into, and expel out of, the lungs; "I can breathe better now"');
  assert.deepEqual(verb?.pointers.map((p) => p.target), ['v00002325']);
  assert.equal(verb?.definition, 'draw air into, and expel out of, the lungs');
  assert.deepEqual(verb?.examples, ['I can breathe better now']);
});

test('skips license lines and rejects truncated lines', () => {
  assert.equal(parseDataLine('  1 This software and database is being provided'), null);
  assert.equal(parseDataLine(''), null);
  assert.throws(() => parseDataLine('00000001 03 n 02 only_one 0'), /truncated WordNet data line/);
  assert.throws(() => parseDataLine('00000001 03 q 01 x 0 000 | y'), /unknown synset type "q"/);
});

test('splits a gloss into definition and examples', () => {
  assert.deepEqual(splitGloss('sloping land; "he sat on the bank"; "the bank was steep"'), {
    definition: 'sloping land',
    examples: ['he sat on the bank', 'the bank was steep'],
  });
  assert.deepEqual(splitGloss('the act of assembling: "mobilization of the troops"'), {
    definition: 'the act of assembling',
    examples: ['mobilization of the troops'],
  });
  // A quote inside the definition does not start the examples.
  assert.deepEqual(splitGloss('promise of reward as in "carrot and stick"; "used the carrot"'), {
    definition: 'promise of reward as in "carrot and stick"',
    examples: ['used the carrot'],
  });
});

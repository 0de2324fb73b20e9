import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import {
  ALPACA_PROMPT_NO_INPUT, ALPACA_PROMPT_WITH_INPUT, DataFormatError, DataOrder, IGNORE_INDEX, InstructionDataset, collate, encodeExample,
  formatAlpacaPrompt, parseAlpacaJsonl, shuffledIndices, splitHeldOut, type TextTokenizer,
} from '../src/data/index.js';
import { WORDNET_TRAIN, tinyTokenizer, wordnetExamples } from './train-fixtures.js';

/** One id per UTF-16 unit (code + 10); bos 1, eos 2, pad 0. */
function charTokenizer(special: { bos?: number | null; eos?: number | null; pad?: number | null } = {}): TextTokenizer {
  return {
    encode: (text: string) => Array.from(text, (c) => c.charCodeAt(0) + 10),
    bosId: special.bos === undefined ? 1 : special.bos,
    eosId: special.eos === undefined ? 2 : special.eos,
    padId: special.pad === undefined ? 0 : special.pad,
  };
}

describe('Alpaca JSONL', () => {
  it('reads instruction, optional input and output; skips blank lines; accepts CRLF and a BOM', () => {
    const text = '\uFEFF{"instruction":"a","input":"b","output":"c"}\r\n\n{"instruction":"d","output":"e"}\n{"instruction":"f","input":null,"output":""}\n';
    expect(parseAlpacaJsonl(text, 'x.jsonl')).toEqual([
      { instruction: 'a', input: 'b', output: 'c' },
      { instruction: 'd', input: '', output: 'e' },
      { instruction: 'f', input: '', output: '' },
    ]);
  });

  it('names the file and line of a line that is not JSON', () => {
    const text = '{"instruction":"a","output":"b"}\n\n{"instruction": "a", oops}\n';
    expect(() => parseAlpacaJsonl(text, 'data/train.jsonl')).toThrow(DataFormatError);
    expect(() => parseAlpacaJsonl(text, 'data/train.jsonl')).toThrow(/^data\/train\.jsonl:3: not valid JSON/);
  });

  it('names the file, line and field of a record that lacks a field or has a wrong type', () => {
    expect(() => parseAlpacaJsonl('{"instruction":"a","output":"b"}\n{"instruction":"a"}', 'f.jsonl'))
      .toThrow(/^f\.jsonl:2: missing field "output"/);
    expect(() => parseAlpacaJsonl('{"output":"b"}', 'f.jsonl')).toThrow(/^f\.jsonl:1: missing field "instruction"/);
    expect(() => parseAlpacaJsonl('{"instruction":"a","output":7}', 'f.jsonl')).toThrow(/^f\.jsonl:1: field "output" must be a string, got number/);
    expect(() => parseAlpacaJsonl('[1,2]', 'f.jsonl')).toThrow(/^f\.jsonl:1: expected a JSON object, got an array/);
    expect(() => parseAlpacaJsonl('\n\n', 'f.jsonl')).toThrow(/^f\.jsonl:1: the file holds no examples/);
    try {
      parseAlpacaJsonl('{"instruction":"a","output":"b"}\n"text"', 'g.jsonl');
    } catch (e) {
      expect(e).toBeInstanceOf(DataFormatError);
      expect((e as DataFormatError).line).toBe(2);
      expect((e as DataFormatError).file).toBe('g.jsonl');
    }
  });

  it.runIf(existsSync(WORDNET_TRAIN))('parses the embedded WordNet set', () => {
    const examples = parseAlpacaJsonl(readFileSync(WORDNET_TRAIN, 'utf8'), WORDNET_TRAIN);
    expect(examples.length).toBeGreaterThan(100);
    expect(examples.every((e) => typeof e.instruction === 'string' && e.instruction.length > 0 && typeof e.output === 'string')).toBe(true);
  });
});

describe('prompt template', () => {
  it('is the QLoRA Alpaca template, with "### Response: " ending in a space', () => {
    expect(formatAlpacaPrompt({ instruction: 'Do X.', input: '' })).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
      '### Instruction:\nDo X.\n\n### Response: ');
    expect(formatAlpacaPrompt({ instruction: 'Do X.', input: 'on Y' })).toBe(
      'Below is an instruction that describes a task, paired with an input that provides further context. ' +
      'Write a response that appropriately completes the request.\n\n### Instruction:\nDo X.\n\n### Input:\non Y\n\n### Response: ');
    expect(ALPACA_PROMPT_NO_INPUT.endsWith('### Response: ')).toBe(true);
    expect(ALPACA_PROMPT_WITH_INPUT.includes('{input}')).toBe(true);
  });

  it('substitutes fields verbatim, even with $ patterns or braces', () => {
    const p = formatAlpacaPrompt({ instruction: "$& $' {input}", input: '$1' });
    expect(p).toContain("### Instruction:\n$& $' {input}\n\n### Input:\n$1\n\n");
  });
});

describe('tokenization', () => {
  const tok = charTokenizer();
  const ex = { instruction: 'hi', input: '', output: 'yo' };
  const prompt = formatAlpacaPrompt(ex);

  it('is bos + prompt, then response + eos, with the prompt masked out of the labels', () => {
    const e = encodeExample(tok, ex);
    const source = [1, ...Array.from(prompt, (c) => c.charCodeAt(0) + 10)];
    const target = ['y'.charCodeAt(0) + 10, 'o'.charCodeAt(0) + 10, 2];
    expect(e.inputIds).toEqual([...source, ...target]);
    expect(e.labels).toEqual([...source.map(() => IGNORE_INDEX), ...target]);
    expect(e.sourceLength).toBe(source.length);
  });

  it('truncates source and target on the right to their own limits', () => {
    const e = encodeExample(tok, ex, { maxSourceLength: 5, maxTargetLength: 2 });
    expect(e.inputIds).toEqual([1, ...Array.from(prompt.slice(0, 4), (c) => c.charCodeAt(0) + 10), 'y'.charCodeAt(0) + 10, 'o'.charCodeAt(0) + 10]);
    expect(e.labels.slice(0, 5)).toEqual(Array(5).fill(IGNORE_INDEX));
    expect(e.labels.slice(5)).toEqual(['y'.charCodeAt(0) + 10, 'o'.charCodeAt(0) + 10]);
    expect(() => encodeExample(tok, ex, { maxSourceLength: 0, maxTargetLength: 2 })).toThrow(/maxSourceLength must be a positive integer, got 0/);
  });

  it('leaves bos and eos out when the tokenizer has none', () => {
    const e = encodeExample(charTokenizer({ bos: null, eos: null }), ex);
    expect(e.inputIds.length).toBe(prompt.length + 2);
    expect(e.labels.filter((l) => l !== IGNORE_INDEX)).toEqual(['y'.charCodeAt(0) + 10, 'o'.charCodeAt(0) + 10]);
  });

  it('uses the real tokenizer: ids decode back to the prompt and response', () => {
    const t = tinyTokenizer();
    const example = wordnetExamples(3)[2]!;
    const e = encodeExample(t, example);
    expect(e.inputIds[0]).toBe(t.bosId);
    expect(e.inputIds[e.inputIds.length - 1]).toBe(t.eosId);
    expect(t.decode(e.inputIds.slice(1, e.sourceLength))).toBe(formatAlpacaPrompt(example));
    expect(t.decode(e.labels.slice(e.sourceLength, -1))).toBe(example.output);
  });
});

describe('batches', () => {
  it('pads on the right and shifts the labels to the next position (reference built with loops)', () => {
    const a = { inputIds: [5, 6, 7, 8], labels: [IGNORE_INDEX, IGNORE_INDEX, 7, 8], sourceLength: 2 };
    const b = { inputIds: [9, 10], labels: [IGNORE_INDEX, 10], sourceLength: 1 };
    const c = { inputIds: [11, 12, 13], labels: [IGNORE_INDEX, 12, 13], sourceLength: 1 };
    const batch = collate([a, b, c], { padId: 3 });
    expect(batch.inputIds.shape).toEqual([3, 4]);
    expect(batch.inputIds.dtype).toBe('int32');
    const ids: number[] = [];
    const targets: number[] = [];
    let counted = 0;
    for (const e of [a, b, c]) {
      for (let t = 0; t < 4; t++) {
        ids.push(t < e.inputIds.length ? e.inputIds[t]! : 3);
        const next = t + 1 < e.labels.length ? e.labels[t + 1]! : IGNORE_INDEX;
        targets.push(next);
        if (next !== IGNORE_INDEX) counted++;
      }
    }
    expect(Array.from(batch.inputIds.toTypedArray())).toEqual(ids);
    expect(Array.from(batch.targets.toTypedArray())).toEqual(targets);
    expect(batch.targetTokens).toBe(counted);
    expect(batch.inputTokens).toBe(9);
    expect(() => collate([])).toThrow(/at least one example/);
  });
});

describe('data order', () => {
  it('shuffles each pass into a permutation that depends only on (seed, epoch)', () => {
    for (const n of [1, 2, 7, 50]) {
      const p = shuffledIndices(n, 3, 0);
      expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(shuffledIndices(n, 3, 0)).toEqual(p);
    }
    expect(shuffledIndices(50, 3, 0)).not.toEqual(shuffledIndices(50, 4, 0));
    expect(shuffledIndices(50, 3, 0)).not.toEqual(shuffledIndices(50, 3, 1));
  });

  it('puts each element in each place about equally often', () => {
    const counts = [0, 0, 0, 0];
    for (let epoch = 0; epoch < 4000; epoch++) counts[shuffledIndices(4, 11, epoch).indexOf(0)]! += 1;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });

  it('is an endless stream where every pass visits every example once, readable from any position', () => {
    const order = new DataOrder(5, { seed: 9 });
    const stream = order.range(0, 23);
    for (let e = 0; e < 4; e++) expect([...stream.slice(5 * e, 5 * e + 5)].sort()).toEqual([0, 1, 2, 3, 4]);
    // A fresh order (as after a resume) reads the same examples from the middle of the stream.
    expect(new DataOrder(5, { seed: 9 }).range(13, 10)).toEqual(stream.slice(13, 23));
    expect(new DataOrder(5, { seed: 9 }).indexAt(17)).toBe(stream[17]);
    expect(new DataOrder(5, { shuffle: false }).range(3, 5)).toEqual([3, 4, 0, 1, 2]);
    expect(order.epochOf(14)).toBe(2);
    expect(() => new DataOrder(0)).toThrow(/at least one example/);
    expect(() => new DataOrder(3, { seed: -1 })).toThrow(/seed must be an integer/);
    expect(() => order.indexAt(-1)).toThrow(/position must be a non-negative integer/);
  });
});

describe('InstructionDataset', () => {
  it('groups the stream into the micro-batches of each step, and counts targets as collate does', () => {
    const data = new InstructionDataset(wordnetExamples(6), tinyTokenizer(), { seed: 5 });
    const plan = { batchSize: 2, gradAccum: 3 };
    const stream = data.order.range(0, 24);
    expect(data.stepIndices(0, plan)).toEqual([stream.slice(0, 2), stream.slice(2, 4), stream.slice(4, 6)]);
    expect(data.stepIndices(3, plan).flat()).toEqual(stream.slice(18, 24));
    expect(data.positionOfStep(3, plan)).toBe(18);
    for (const ids of data.stepIndices(1, plan)) {
      const batch = data.batchOf(ids);
      expect(data.targetTokensOf(ids)).toBe(batch.targetTokens);
      batch.inputIds.dispose();
      batch.targets.dispose();
    }
    expect(() => data.stepIndices(0, { batchSize: 0, gradAccum: 1 })).toThrow(/batchSize must be a positive integer/);
    // Kept compact after the first call: the second call rebuilds the same ids and labels.
    const direct = encodeExample(tinyTokenizer(), data.examples[1]!);
    expect(data.encode(1)).toEqual(direct);
    expect(data.encode(1)).toEqual(direct);
    const sizes = [...data.sequentialBatches(4)].map((b) => b.inputIds.shape[0]);
    expect(sizes).toEqual([4, 2]);
  });
});

describe('held-out split', () => {
  it('holds out a seeded random subset, keeping file order on both sides', () => {
    const items = Array.from({ length: 30 }, (_, i) => i);
    const { train, heldOut } = splitHeldOut(items, 6, 1);
    expect(heldOut.length).toBe(6);
    expect([...train, ...heldOut].sort((a, b) => a - b)).toEqual(items);
    expect(train).toEqual([...train].sort((a, b) => a - b));
    expect(splitHeldOut(items, 6, 1).heldOut).toEqual(heldOut);
    expect(splitHeldOut(items, 6, 2).heldOut).not.toEqual(heldOut);
    expect(splitHeldOut(items, 0, 1).train).toEqual(items);
    expect(() => splitHeldOut(items, 30, 1)).toThrow(/cannot hold out 30 of 30/);
  });
});

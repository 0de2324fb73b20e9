import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { embedding, tensor, type Tensor } from '@blora/tensor';
import { randomValues } from '@blora/tensor/testing';
import { InstructionDataset, formatAlpacaPrompt, encodeExample, type TextTokenizer } from '../src/data/index.js';
import {
  evaluateMultipleChoice, heldOutLoss, parseMultipleChoiceJsonl, scoreContinuations, textPerplexity,
} from '../src/eval/index.js';
import type { CausalLM } from '../src/train/index.js';
import { WORDNET_MC, tinyAdaptedModel, tinyTokenizer, wordnetExamples } from './train-fixtures.js';

const V = 7;

/** A bigram model: the logits after token i are row i of a fixed table (any position). */
class BigramModel implements CausalLM {
  readonly table: Float64Array;
  private readonly weight: Tensor;
  training = false;
  forwardCalls = 0;
  constructor(seed: number) {
    this.table = Float64Array.from(randomValues(V * V, seed), (x) => 3 * x);
    this.weight = tensor(this.table, { shape: [V, V] });
  }
  forward(ids: Tensor): Tensor {
    this.forwardCalls++;
    return embedding(this.weight, ids);
  }
  namedParameters(): [string, Tensor][] {
    return [['table', this.weight]];
  }
  /** log p(next | prev), float64. */
  logProb(prev: number, next: number): number {
    const row = this.table.subarray(prev * V, prev * V + V);
    const max = Math.max(...row);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    return row[next]! - max - Math.log(sum);
  }
  argmax(prev: number): number {
    const row = Array.from(this.table.subarray(prev * V, prev * V + V));
    return row.indexOf(Math.max(...row));
  }
}

/** ids 1..V-1 by character: 'a' -> 1, 'b' -> 2, ...; bos 0 (pad also 0). */
const letters: TextTokenizer = {
  encode: (text) => Array.from(text, (c) => 1 + ((c.charCodeAt(0) - 97 + 60 * (V - 1)) % (V - 1))),
  bosId: 0, eosId: null, padId: 0,
};

describe('scoreContinuations', () => {
  it('sums log p of the continuation tokens given everything before them (float64 reference), in any batch size', () => {
    const model = new BigramModel(3);
    const requests = [
      { context: [0, 1, 2], continuation: [3] },
      { context: [0], continuation: [4, 5, 6, 1] },
      { context: [5, 5, 5, 5, 5], continuation: [2, 2] },
    ];
    const ref = requests.map((r) => {
      const full = [...r.context, ...r.continuation];
      let ll = 0;
      let greedy = true;
      for (let k = r.context.length; k < full.length; k++) {
        ll += model.logProb(full[k - 1]!, full[k]!);
        if (model.argmax(full[k - 1]!) !== full[k]) greedy = false;
      }
      return { ll, greedy };
    });
    for (const batchSize of [1, 2, 8]) {
      const scores = scoreContinuations(model, requests, { batchSize });
      scores.forEach((s, i) => {
        expect(s.logLikelihood).toBeCloseTo(ref[i]!.ll, 5);
        expect(s.isGreedy).toBe(ref[i]!.greedy);
        expect(s.tokens).toBe(requests[i]!.continuation.length);
      });
    }
    const greedyNext = model.argmax(2);
    expect(scoreContinuations(model, [{ context: [2], continuation: [greedyNext] }])[0]!.isGreedy).toBe(true);
  });

  it('cuts long inputs from the left to maxLength, scoring only what remains', () => {
    const model = new BigramModel(5);
    const [s] = scoreContinuations(model, [{ context: [1, 2, 3, 4], continuation: [5, 6, 1] }], { maxLength: 2 });
    // The input (context + continuation)[:-1] = [1,2,3,4,5,6] keeps [5,6]: it predicts 6 and 1.
    expect(s!.tokens).toBe(2);
    expect(s!.logLikelihood).toBeCloseTo(model.logProb(5, 6) + model.logProb(6, 1), 5);
  });

  it('rejects empty contexts and continuations', () => {
    const model = new BigramModel(1);
    expect(() => scoreContinuations(model, [{ context: [], continuation: [1] }])).toThrow(/request 0 has an empty context/);
    expect(() => scoreContinuations(model, [{ context: [1], continuation: [] }])).toThrow(/request 0 has an empty continuation/);
    expect(() => scoreContinuations(model, [{ context: [1], continuation: [1] }], { batchSize: 0 })).toThrow(/batchSize must be a positive integer/);
  });
});

describe('multiple choice', () => {
  it('predicts by log-likelihood (acc) and by log-likelihood per character (acc_norm)', () => {
    const model = new BigramModel(9);
    const questions = [
      { instruction: 'pick', input: '', choices: ['a', 'bb', 'cdcd'], answer: 0 },
      { instruction: 'pick', input: 'ab', choices: ['e', 'fa', 'bbbbbb', 'c'], answer: 2 },
      { instruction: 'pick', input: 'x', choices: ['ab', 'ba'], answer: 1 },
    ];
    const result = evaluateMultipleChoice(model, letters, questions, { batchSize: 3 });
    let right = 0;
    let rightNorm = 0;
    questions.forEach((q, i) => {
      const context = [0, ...letters.encode(formatAlpacaPrompt(q))];
      const lls = q.choices.map((c) => {
        const full = [...context, ...letters.encode(c)];
        let ll = 0;
        for (let k = context.length; k < full.length; k++) ll += model.logProb(full[k - 1]!, full[k]!);
        return ll;
      });
      const best = lls.indexOf(Math.max(...lls));
      const norm = lls.map((v, k) => v / q.choices[k]!.length);
      const bestNorm = norm.indexOf(Math.max(...norm));
      expect(result.questions[i]!.predicted).toBe(best);
      expect(result.questions[i]!.predictedNorm).toBe(bestNorm);
      result.questions[i]!.logLikelihoods.forEach((v, k) => expect(v).toBeCloseTo(lls[k]!, 5));
      if (best === q.answer) right++;
      if (bestNorm === q.answer) rightNorm++;
    });
    expect(result.accuracy).toBeCloseTo(right / 3, 12);
    expect(result.accuracyNorm).toBeCloseTo(rightNorm / 3, 12);
    expect(result.count).toBe(3);
  });

  it('reads questions JSONL with errors naming the file and line', () => {
    const good = '{"id":"q1","instruction":"i","input":"x","choices":["a","b"],"answer":1}\n{"instruction":"j","choices":["c","d","e"],"answer":0}';
    expect(parseMultipleChoiceJsonl(good, 'mc.jsonl')).toEqual([
      { id: 'q1', instruction: 'i', input: 'x', choices: ['a', 'b'], answer: 1 },
      { instruction: 'j', input: '', choices: ['c', 'd', 'e'], answer: 0 },
    ]);
    expect(() => parseMultipleChoiceJsonl(`${good}\n{"instruction":"k","choices":["a","b"],"answer":2}`, 'mc.jsonl'))
      .toThrow(/^mc\.jsonl:3: field "answer" must be an index into "choices" \(0\.\.1\), got 2/);
    expect(() => parseMultipleChoiceJsonl('{"instruction":"k","choices":["a"],"answer":0}', 'mc.jsonl')).toThrow(/^mc\.jsonl:1: field "choices"/);
    expect(() => parseMultipleChoiceJsonl('{"choices":["a","b"],"answer":0}', 'mc.jsonl')).toThrow(/^mc\.jsonl:1: missing string field "instruction"/);
    expect(() => parseMultipleChoiceJsonl('nope', 'mc.jsonl')).toThrow(/^mc\.jsonl:1: not valid JSON/);
  });

  it.runIf(existsSync(WORDNET_MC))('reads the embedded 4-choice test and scores it with the tiny model', () => {
    const questions = parseMultipleChoiceJsonl(readFileSync(WORDNET_MC, 'utf8'), WORDNET_MC);
    expect(questions.length).toBeGreaterThan(50);
    expect(questions.every((q) => q.choices.length === 4)).toBe(true);
    const { model } = tinyAdaptedModel();
    const r = evaluateMultipleChoice(model, tinyTokenizer(), questions.slice(0, 4), { batchSize: 8 });
    expect(r.count).toBe(4);
    expect(r.accuracy).toBeGreaterThanOrEqual(0);
    expect(r.questions.every((q) => q.logLikelihoods.length === 4 && q.logLikelihoods.every((v) => v < 0))).toBe(true);
  });
});

describe('held-out loss and perplexity', () => {
  it('held-out loss is the token mean of -log p over the responses (checked against continuation scores)', () => {
    const { model } = tinyAdaptedModel();
    const tok = tinyTokenizer();
    const examples = wordnetExamples(5);
    const result = heldOutLoss(model, new InstructionDataset(examples, tok), 2);
    const requests = examples.map((e) => {
      const enc = encodeExample(tok, e);
      return { context: enc.inputIds.slice(0, enc.sourceLength), continuation: enc.inputIds.slice(enc.sourceLength) };
    });
    const scores = scoreContinuations(model, requests, { batchSize: 5 });
    const tokens = requests.reduce((n, r) => n + r.continuation.length, 0);
    expect(result.tokens).toBe(tokens);
    expect(result.loss).toBeCloseTo(-scores.reduce((n, s) => n + s.logLikelihood, 0) / tokens, 4);
    expect(result.perplexity).toBeCloseTo(Math.exp(result.loss), 8);
  });

  it('text perplexity scores every token after the first exactly once', () => {
    const model = new BigramModel(4);
    const text = 'abcdefabcabffedcba';
    const ids = [0, ...letters.encode(text)];
    let ll = 0;
    for (let k = 1; k < ids.length; k++) ll += model.logProb(ids[k - 1]!, ids[k]!);
    for (const windowLength of [1, 4, 100]) {
      const r = textPerplexity(model, letters, text, { windowLength, batchSize: 3 });
      expect(r.tokens).toBe(ids.length - 1);
      expect(r.loss).toBeCloseTo(-ll / (ids.length - 1), 5);
    }
    expect(textPerplexity(model, letters, text, { maxTokens: 5 }).tokens).toBe(5);
    expect(() => textPerplexity(model, { ...letters, bosId: null }, 'a')).toThrow(/fewer than two tokens/);
  });

  it('restores training mode after evaluating', () => {
    const { model } = tinyAdaptedModel();
    model.train();
    heldOutLoss(model, new InstructionDataset(wordnetExamples(2), tinyTokenizer()), 2);
    expect(model.training).toBe(true);
    model.eval();
    heldOutLoss(model, new InstructionDataset(wordnetExamples(2), tinyTokenizer()), 2);
    expect(model.training).toBe(false);
  });
});

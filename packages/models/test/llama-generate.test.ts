// Generation with a KV cache against recomputing the whole sequence, token choice (greedy,
// temperature, top-k, top-p), and log-likelihood scoring against the float64 reference.
import { afterAll, describe, expect, it } from 'vitest';
import { Generator, slice, tidy } from '@blora/tensor';
import { assertClose, seededRandom } from '@blora/tensor/testing';
import {
  KVCache, argmaxOf, chooseToken, generate, loadLlama, scoreContinuation, scoreContinuations, type LlamaForCausalLM,
} from '../src/index.js';
import {
  randomWeights, refConfig, referenceLogProb, referenceLogits, roundedToFloat32, tempDir, tinyGemmaJson, tinyLlamaJson,
  tinyMistralJson, writeCheckpoint, type RefWeights,
} from './llama-fixtures.js';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

function checkpoint(json: Record<string, unknown>, seed: number): { dir: string; weights: RefWeights } {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const weights = roundedToFloat32(randomWeights(refConfig(json), seed));
  writeCheckpoint(t.dir, json, weights);
  return { dir: t.dir, weights };
}

/** Logits of the last position from a full recomputation of `sequence`. */
function recomputedLast(model: LlamaForCausalLM, sequence: number[]): Float64Array {
  return tidy(() => {
    const logits = model.forward([sequence]);
    return slice(logits, 1, sequence.length - 1, sequence.length).toFloat64Array();
  });
}

describe('generation with a KV cache', () => {
  for (const [name, json] of [['Llama', tinyLlamaJson()], ['Mistral (window 3)', tinyMistralJson()], ['Gemma', tinyGemmaJson()]] as const) {
    it(`${name}: each cached step equals recomputing the full sequence`, () => {
      const { dir } = checkpoint(json, 71);
      const model = loadLlama(dir);
      const prompt = [5, 3, 8];
      const cache = new KVCache(model.config.numHiddenLayers);
      const sequence = [...prompt];
      let pending = prompt;
      for (let step = 0; step < 6; step++) {
        const cached = tidy(() => {
          const logits = model.forward([pending], { kvCache: cache });
          return slice(logits, 1, pending.length - 1, pending.length).toFloat64Array();
        });
        const full = recomputedLast(model, sequence);
        assertClose(cached, full, { rtol: 1e-5, atol: 1e-5 });
        const next = argmaxOf(full);
        expect(argmaxOf(cached)).toBe(next);
        sequence.push(next);
        pending = [next];
      }
      cache.dispose();
      const greedy = generate(model, prompt, { maxNewTokens: 6, eosTokenIds: [] });
      expect(greedy).toEqual({ tokens: sequence.slice(prompt.length), finishReason: 'length' });
      expect(generate(model, prompt, { maxNewTokens: 6, eosTokenIds: [], useCache: false })).toEqual(greedy);
    });
  }

  it('sampling is reproducible from the seed, equal with and without the cache, and differs across seeds', () => {
    const { dir } = checkpoint(tinyLlamaJson(), 72);
    const model = loadLlama(dir);
    const options = { maxNewTokens: 8, eosTokenIds: [], doSample: true, temperature: 1.5, topP: 0.9 };
    const a = generate(model, [1, 2], { ...options, seed: 4 });
    expect(generate(model, [1, 2], { ...options, seed: 4 })).toEqual(a);
    expect(generate(model, [1, 2], { ...options, seed: 4, useCache: false })).toEqual(a);
    expect(generate(model, [1, 2], { ...options, generator: new Generator(4) })).toEqual(a);
    const others = [5, 6, 7].map((seed) => generate(model, [1, 2], { ...options, seed }).tokens.join(','));
    expect(others.some((t) => t !== a.tokens.join(','))).toBe(true);
  });

  it('stops at an end-of-sequence id and reports tokens as they come', () => {
    const { dir } = checkpoint(tinyLlamaJson(), 73);
    const model = loadLlama(dir);
    const free = generate(model, [4, 4], { maxNewTokens: 5, eosTokenIds: [] });
    const stopAt = free.tokens[2]!;
    const seen: number[] = [];
    const stopped = generate(model, [4, 4], { maxNewTokens: 5, eosTokenIds: [stopAt], onToken: (id) => seen.push(id) });
    const first = free.tokens.indexOf(stopAt);
    expect(stopped).toEqual({ tokens: free.tokens.slice(0, first + 1), finishReason: 'eos' });
    expect(seen).toEqual(stopped.tokens);
    expect(generate(model, [4], { maxNewTokens: 0 })).toEqual({ tokens: [], finishReason: 'length' });
    expect(() => generate(model, [], {})).toThrow(/prompt must be a non-empty array/);
    expect(() => generate(model, [1], { maxNewTokens: -1 })).toThrow(/maxNewTokens must be a non-negative integer/);
    expect(() => generate(model, [1], { doSample: true, temperature: 0 })).toThrow(/temperature must be > 0/);
    expect(() => generate(model, [1], { topP: 1.5 })).toThrow(/topP must be in \(0, 1\]/);
  });
});

describe('chooseToken', () => {
  const logits = [0.5, 2.0, -1.0, 2.0, 1.0, 0.0];

  it('greedy takes the first maximum', () => {
    expect(chooseToken(logits, {}, () => 0.5)).toBe(1);
    expect(argmaxOf([1, 3, 3])).toBe(1);
    // The first NaN wins, as with the argmax op that greedy generation runs on the device.
    expect(argmaxOf([1, Number.NaN, 3, Number.NaN])).toBe(1);
    expect(argmaxOf([Number.NaN, 5])).toBe(0);
  });

  /** Empirical frequencies of `n` draws. */
  function frequencies(options: Parameters<typeof chooseToken>[1], n: number): number[] {
    const rnd = seededRandom(123);
    const counts = new Array(logits.length).fill(0) as number[];
    for (let i = 0; i < n; i++) counts[chooseToken(logits, options, rnd)]!++;
    return counts.map((c) => c / n);
  }

  /** Independent expectation: softmax(l / T), top-k, nucleus, renormalised. */
  function expected(temperature: number, topK: number, topP: number): number[] {
    const p = logits.map((l) => Math.exp(l / temperature));
    const z = p.reduce((a, b) => a + b, 0);
    const ranked = p.map((v, i) => [v / z, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const k = topK > 0 ? ranked.slice(0, topK) : ranked;
    const zk = k.reduce((a, [v]) => a + v, 0);
    const kept: (readonly [number, number])[] = [];
    let mass = 0;
    for (const [v, i] of k) {
      kept.push([v, i]);
      mass += v / zk;
      if (mass >= topP) break;
    }
    const total = kept.reduce((a, [v]) => a + v, 0);
    const out = new Array(logits.length).fill(0) as number[];
    for (const [v, i] of kept) out[i] = v / total;
    return out;
  }

  for (const [temperature, topK, topP] of [[1, 0, 1], [0.7, 0, 1], [2, 0, 0.8], [1, 3, 1], [1, 0, 0.5], [1.3, 4, 0.9]] as const) {
    it(`samples softmax(l / ${temperature}) with top-k ${topK}, top-p ${topP}`, () => {
      const want = expected(temperature, topK, topP);
      const got = frequencies({ doSample: true, temperature, topK, topP }, 20000);
      got.forEach((f, i) => {
        if (want[i] === 0) expect(f).toBe(0);
        else expect(Math.abs(f - want[i]!)).toBeLessThan(0.015);
      });
    });
  }

  it('top-p keeps at least the most likely token', () => {
    expect(frequencies({ doSample: true, topP: 0.01 }, 100)).toEqual([0, 1, 0, 0, 0, 0]);
  });
});

describe('scoring continuations', () => {
  it('sums log-probabilities like lm-evaluation-harness, against the reference', () => {
    const json = tinyMistralJson();
    const { dir, weights } = checkpoint(json, 81);
    const model = loadLlama(dir, { dtype: 'float64' });
    const c = refConfig(json);
    const requests = [
      { context: [1, 7, 3], continuation: [9] },
      { context: [1, 2, 3, 4, 5], continuation: [6, 7, 8] },
      { context: [11], continuation: [12, 13] },
      { context: [1, 7, 3], continuation: [4, 5] },
    ];
    const expectedScores = requests.map(({ context, continuation }) => {
      const whole = [...context, ...continuation];
      const logits = referenceLogits(c, weights, [whole.slice(0, -1)])[0]!;
      let lp = 0;
      let greedy = true;
      continuation.forEach((target, j) => {
        const row = logits[context.length - 1 + j]!;
        lp += referenceLogProb(row, target);
        greedy &&= row.indexOf(Math.max(...row)) === target;
      });
      return { logProb: lp, isGreedy: greedy };
    });
    for (const batchSize of [1, 2, 8]) {
      const got = scoreContinuations(model, requests, { batchSize });
      got.forEach((s, i) => {
        expect(s.logProb).toBeCloseTo(expectedScores[i]!.logProb, 9);
        expect(s.isGreedy).toBe(expectedScores[i]!.isGreedy);
      });
    }
    expect(scoreContinuation(model, [1, 7, 3], [4, 5])).toBeCloseTo(expectedScores[3]!.logProb, 9);
  });

  it('a greedy continuation is recognised', () => {
    const { dir } = checkpoint(tinyGemmaJson(), 82);
    const model = loadLlama(dir);
    const greedy = generate(model, [1, 2, 3], { maxNewTokens: 3, eosTokenIds: [] }).tokens;
    const [score] = scoreContinuations(model, [{ context: [1, 2, 3], continuation: greedy }]);
    expect(score!.isGreedy).toBe(true);
    const other = greedy.map((t) => (t + 1) % model.config.vocabSize);
    expect(scoreContinuations(model, [{ context: [1, 2, 3], continuation: other }])[0]!.isGreedy).toBe(false);
    expect(score!.logProb).toBeLessThan(0);
  });

  it('keeps the last maxLength tokens of long inputs', () => {
    const json = tinyLlamaJson();
    const { dir, weights } = checkpoint(json, 83);
    const model = loadLlama(dir, { dtype: 'float64' });
    const context = [1, 2, 3, 4, 5, 6, 7];
    const continuation = [8, 9];
    // maxLength 4: the input is (context + continuation)[-5:-1] = [6, 7, 8] preceded by 5.
    const input = [...context, ...continuation].slice(-5, -1);
    const logits = referenceLogits(refConfig(json), weights, [input])[0]!;
    const want = referenceLogProb(logits[2]!, 8) + referenceLogProb(logits[3]!, 9);
    expect(scoreContinuations(model, [{ context, continuation }], { maxLength: 4 })[0]!.logProb).toBeCloseTo(want, 9);
  });

  it('checks its requests', () => {
    const { dir } = checkpoint(tinyLlamaJson(), 84);
    const model = loadLlama(dir);
    expect(() => scoreContinuation(model, [], [1])).toThrow(/request 0 has an empty context; prepend the BOS token/);
    expect(() => scoreContinuation(model, [1], [])).toThrow(/request 0 has an empty continuation/);
    expect(() => scoreContinuation(model, [1], [37])).toThrow(/request 0: continuation token 0 is 37, outside the vocabulary \[0, 37\)/);
    expect(() => scoreContinuations(model, [{ context: [1], continuation: [2, 3] }], { maxLength: 1 })).toThrow(/longer than maxLength 1/);
    expect(() => scoreContinuations(model, [], { batchSize: 0 })).toThrow(/batchSize must be a positive integer/);
    expect(scoreContinuations(model, [])).toEqual([]);
  });
});

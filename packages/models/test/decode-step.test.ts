// The one-token step with its position in device memory (DecodeStep, run op by op on the CPU):
// every step's logits equal those of a pass through the KV cache and of a full recomputation,
// Llama, Mistral (a sliding window shorter than the sequence) and Gemma; the cache advances.
import { afterAll, describe, expect, it } from 'vitest';
import { cpuBackend, findKernel, listKernels, registerBackend, registerKernel, slice, tidy, type TypedArray } from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import { assertClose } from '@blora/tensor/testing';
import { DecodeStep, KVCache, argmaxOf, generate, loadLlama, type LlamaForCausalLM } from '../src/index.js';
import { randomWeights, refConfig, roundedToFloat32, tempDir, tinyGemmaJson, tinyLlamaJson, tinyMistralJson, writeCheckpoint } from './llama-fixtures.js';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

function model(json: Record<string, unknown>, seed: number, device = 'cpu'): LlamaForCausalLM {
  const t = tempDir();
  cleanups.push(t.cleanup);
  writeCheckpoint(t.dir, json, roundedToFloat32(randomWeights(refConfig(json), seed)));
  return loadLlama(t.dir, { dtype: 'float64', device });
}

// A host device that "records graphs" the way a GPU must: while recording, reading values back or
// uploading host data is an error (a replay would not see them); a replay runs the step again.
// With it the recorded path of DecodeStep and generate is checked on any machine.
const RECORDING = 'host-recording';
let recording = false;
const refuseWhileRecording = (what: string) => {
  if (recording) throw new Error(`${RECORDING}: ${what} while recording a graph`);
};
registerBackend({
  ...cpuBackend,
  name: RECORDING,
  fromHost(dtype, data): unknown {
    refuseWhileRecording('host data uploaded');
    return cpuBackend.fromHost(dtype, data);
  },
  toHost(handle, dtype, numel): TypedArray {
    refuseWhileRecording('device values read');
    return cpuBackend.toHost(handle, dtype, numel);
  },
  captureGraph(run) {
    recording = true;
    try {
      run();
    } finally {
      recording = false;
    }
    return { replay: run, dispose: () => {} };
  },
});
for (const op of listKernels('cpu')) registerKernel(op, RECORDING, findKernel(op, 'cpu')!);

/** Logits of the last position of `ids` through `cache` (or recomputed without one). */
function lastLogits(m: LlamaForCausalLM, ids: number[], cache?: KVCache): Float64Array {
  return noGrad(() => tidy(() => slice(m.forward([ids], cache ? { kvCache: cache } : {}), 1, ids.length - 1, ids.length).toFloat64Array()));
}

describe('DecodeStep', () => {
  for (const [name, json] of [['Llama', tinyLlamaJson()], ['Mistral (window 3)', tinyMistralJson()], ['Gemma', tinyGemmaJson()]] as const) {
    it(`${name}: each step equals a pass through the KV cache and the full recomputation`, () => {
      const m = model(json, 91);
      const prompt = [5, 3, 8];
      const [stepCache, plainCache] = [new KVCache(m.config.numHiddenLayers, { capacity: 16 }), new KVCache(m.config.numHiddenLayers)];
      let expected = lastLogits(m, prompt, plainCache);
      assertClose(lastLogits(m, prompt, stepCache), expected, { rtol: 1e-12, atol: 1e-12 });
      const step = new DecodeStep(m, stepCache, { graph: false });
      expect(step.usesGraph).toBe(false);
      const sequence = [...prompt];
      for (let i = 0; i < 13; i++) {
        const token = argmaxOf(expected);
        sequence.push(token);
        if (i % 4 === 3) {
          // The greedy step: only the argmax comes back.
          const chosen = step.nextGreedy(token);
          expected = lastLogits(m, [token], plainCache);
          expect(chosen).toBe(argmaxOf(expected));
          continue;
        }
        const logits = step.next(token);
        expected = lastLogits(m, [token], plainCache);
        assertClose(logits, expected, { rtol: 1e-10, atol: 1e-10 });
        assertClose(logits, lastLogits(m, sequence), { rtol: 1e-9, atol: 1e-9 });
        expect(stepCache.length).toBe(sequence.length);
      }
      // The cache is full: a step past its room is refused, nothing written.
      expect(() => step.next(1)).toThrow(/position 16 is past the cache's room for 16/);
      step.dispose();
      stepCache.dispose();
      plainCache.dispose();
    });
  }

  for (const [name, json] of [['Llama', tinyLlamaJson()], ['Mistral (window 3)', tinyMistralJson()], ['Gemma', tinyGemmaJson()]] as const) {
    it(`${name}: the recorded step reads and uploads nothing while recording, and generate takes it by default`, () => {
      const m = model(json, 93, RECORDING);
      const cache = new KVCache(m.config.numHiddenLayers, { capacity: 10 });
      const plainCache = new KVCache(m.config.numHiddenLayers);
      const prompt = [2, 7, 1];
      lastLogits(m, prompt, cache);
      lastLogits(m, prompt, plainCache);
      const step = new DecodeStep(m, cache);
      expect(step.usesGraph).toBe(true);
      for (const token of [4, 0, 9, 3]) {
        assertClose(step.next(token), lastLogits(m, [token], plainCache), { rtol: 1e-10, atol: 1e-10 });
        expect(step.recorded).toBe(true);
      }
      step.dispose();
      cache.dispose();
      plainCache.dispose();
      const options = { maxNewTokens: 6, eosTokenIds: [] };
      const recorded = generate(m, prompt, { ...options, graph: true });
      expect(generate(m, prompt, options)).toEqual(recorded);
      expect(generate(m, prompt, { ...options, graph: false })).toEqual(recorded);
    });
  }

  it('refuses a cache without buffers, a token outside the vocabulary and graphs on a device without them', () => {
    const m = model(tinyLlamaJson(), 92);
    const cache = new KVCache(m.config.numHiddenLayers, { capacity: 8 });
    expect(() => new DecodeStep(m, cache)).toThrow(/holds no buffers yet/);
    lastLogits(m, [1, 2], cache);
    expect(() => new DecodeStep(m, cache, { graph: true })).toThrow(/cannot record graphs/);
    const step = new DecodeStep(m, cache);
    expect(step.usesGraph).toBe(false);
    expect(() => step.next(m.config.vocabSize)).toThrow(/not in the vocabulary/);
    expect(cache.length).toBe(2);
    step.dispose();
    cache.dispose();
    expect(() => generate(m, [1, 2], { maxNewTokens: 2, graph: true })).toThrow(/cannot record graphs/);
  });
});

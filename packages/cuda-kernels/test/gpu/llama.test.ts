// Training a tiny Llama-family model on cuda: one forward and backward pass gives the CPU's
// loss and parameter gradients (within float32 rounding), and 20 AdamW steps follow the CPU's
// loss trajectory while the allocator's live bytes stay flat from step to step. Forward passes
// through the KV cache (written in place on the device) give the logits of one full pass.
import { AdamW, noGrad } from '@blora/autograd';
import { createLlama, generate, KVCache, llamaConfig, type LlamaConfig, type LlamaForCausalLM } from '@blora/models';
import { memoryStats, tidy } from '@blora/tensor';
import { assertClose } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { cudaAvailable, cudaMemoryInfo } from '@blora/cuda-kernels';

// head dim 12, 4 query heads sharing 2 key/value heads, vocabulary 37.
const LLAMA = llamaConfig({ vocabSize: 37, hiddenSize: 48, intermediateSize: 40, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, rmsNormEps: 1e-5 });
const MISTRAL = llamaConfig({ architecture: 'MistralForCausalLM', vocabSize: 31, hiddenSize: 48, intermediateSize: 28, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, slidingWindow: 3 });

const IDS = [
  [1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11],
  [4, 8, 12, 16, 20, 24, 28, 0, 3, 6, 9],
];
const LABELS = [
  [1, 5, 9, 13, 2, -100, 10, 14, 3, 7, 11],
  [4, 8, 12, -100, -100, 24, 28, 0, 3, 6, 9],
];

/** The same fresh model on the CPU and on cuda. */
function pair(config: LlamaConfig, seed: number): [LlamaForCausalLM, LlamaForCausalLM] {
  const cpu = createLlama(config, { seed });
  const cuda = createLlama(config, { seed: seed + 1, device: 'cuda' });
  cuda.loadStateDict(cpu.stateDict());
  return [cpu, cuda];
}

/** Loss of one forward and backward pass; gradients stay on the parameters. */
function lossAndGrads(model: LlamaForCausalLM): number {
  return tidy(() => {
    const loss = model.loss(IDS, LABELS);
    loss.backward();
    return loss.item();
  });
}

function maxAbs(values: Float64Array): number {
  return values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

describe.skipIf(!cudaAvailable())('a tiny Llama-family model on cuda', () => {
  it('forward and backward match the CPU (Llama with grouped heads, Mistral with a sliding window)', () => {
    for (const config of [LLAMA, MISTRAL]) {
      const [cpu, cuda] = pair(config, 7);
      expect(cuda.device).toBe('cuda');
      const cpuLoss = lossAndGrads(cpu);
      const cudaLoss = lossAndGrads(cuda);
      expect(Math.abs(cudaLoss - cpuLoss)).toBeLessThanOrEqual(1e-5 * Math.abs(cpuLoss));
      const cudaParams = new Map(cuda.namedParameters());
      let checked = 0;
      for (const [name, p] of cpu.namedParameters()) {
        const q = cudaParams.get(name)!;
        expect(q.device).toBe('cuda');
        const expected = p.grad!.toFloat64Array();
        const actual = q.grad!.toFloat64Array();
        expect(maxAbs(expected)).toBeGreaterThan(0);
        assertClose(actual, expected, { rtol: 1e-3, atol: 1e-4 * maxAbs(expected) });
        checked++;
      }
      expect(checked).toBe(cudaParams.size);
      cpu.dispose();
      cuda.dispose();
    }
  });

  it('20 AdamW steps follow the CPU and keep the allocated bytes flat', () => {
    const [cpu, cuda] = pair(LLAMA, 11);
    const train = (model: LlamaForCausalLM, onStep: (step: number) => void): number[] => {
      const optimizer = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
      const losses: number[] = [];
      for (let step = 0; step < 20; step++) {
        losses.push(lossAndGrads(model));
        optimizer.step();
        optimizer.zeroGrad();
        onStep(step);
      }
      return losses;
    };
    const cpuLosses = train(cpu, () => {});
    const allocated: number[] = [];
    const tracked: number[] = [];
    const cudaLosses = train(cuda, () => {
      allocated.push(cudaMemoryInfo().allocatedBytes);
      tracked.push(memoryStats('cuda').bytes);
    });
    // The first step creates the optimizer's moments; after it nothing new stays alive.
    expect(new Set(allocated.slice(1)).size).toBe(1);
    expect(new Set(tracked.slice(1)).size).toBe(1);
    expect(cudaLosses[19]!).toBeLessThan(cudaLosses[0]! * 0.8);
    assertClose(cudaLosses, cpuLosses, { rtol: 2e-3, atol: 0 });
    cpu.dispose();
    cuda.dispose();
  });

  it('passes through the KV cache, growing past its first buffers, give the logits of one full pass', () => {
    for (const config of [LLAMA, MISTRAL]) {
      const model = createLlama(config, { seed: 5, device: 'cuda' });
      const ids = Array.from({ length: 21 }, (_, i) => (i * 7 + 3) % config.vocabSize);
      noGrad(() => {
        const full = tidy(() => model.forward([ids]).toFloat64Array());
        const cache = new KVCache(config.numHiddenLayers);
        const parts: number[] = [];
        let at = 0;
        // 6 positions, then 11 single ones, then 4: the buffers of 16 grow once.
        for (const size of [6, ...new Array<number>(11).fill(1), 4]) {
          parts.push(...tidy(() => model.forward([ids.slice(at, at + size)], { kvCache: cache }).toFloat64Array()));
          at += size;
        }
        expect(cache.capacity(0)).toBeGreaterThan(16);
        expect(cache.get(0)!.k.device).toBe('cuda');
        assertClose(parts, full, { rtol: 1e-4, atol: 1e-5 });
        cache.dispose();
      });
      const prompt = ids.slice(0, 5);
      const cached = generate(model, prompt, { maxNewTokens: 12, eosTokenIds: [] });
      const recomputed = generate(model, prompt, { maxNewTokens: 12, eosTokenIds: [], useCache: false });
      expect(cached.tokens).toEqual(recomputed.tokens);
      model.dispose();
    }
  });
});

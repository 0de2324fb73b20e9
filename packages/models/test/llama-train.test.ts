// Training the tiny models a few steps with AdamW: the loss falls, with and without
// activation checkpointing.
import { describe, expect, it } from 'vitest';
import { tidy } from '@blora/tensor';
import { AdamW } from '@blora/autograd';
import { createLlama, parseLlamaConfig, type LlamaForCausalLM } from '../src/index.js';
import { tinyGemmaJson, tinyLlamaJson, tinyMistralJson } from './llama-fixtures.js';

/** Two sequences with a repeating pattern the model can learn. */
function batch(vocab: number): number[][] {
  return [
    Array.from({ length: 12 }, (_, i) => (3 + (i % 4) * 5) % vocab),
    Array.from({ length: 12 }, (_, i) => (7 + (i % 3) * 4) % vocab),
  ];
}

/** Losses of `steps` AdamW steps on the batch (loss measured before each step). */
function train(model: LlamaForCausalLM, steps: number, lr: number): number[] {
  const params = model.parameters().filter((p) => p.requiresGrad);
  const optimizer = new AdamW(params, { lr, weightDecay: 0 });
  const ids = batch(model.config.vocabSize);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    losses.push(tidy(() => {
      const loss = model.loss(ids);
      loss.backward();
      return loss.item();
    }));
    optimizer.step();
    optimizer.zeroGrad();
  }
  return losses;
}

describe('training', () => {
  for (const [name, json] of [['Llama', tinyLlamaJson()], ['Mistral', tinyMistralJson()], ['Gemma', tinyGemmaJson()]] as const) {
    it(`${name}: AdamW lowers the loss`, () => {
      const losses = train(createLlama(parseLlamaConfig(json), { seed: 1 }), 12, 2e-2);
      expect(losses[0]).toBeGreaterThan(Math.log(parseLlamaConfig(json).vocabSize) - 0.5);
      expect(losses[11]!).toBeLessThan(losses[0]! * 0.6);
    });
  }

  it('activation checkpointing follows the same trajectory', () => {
    const config = parseLlamaConfig(tinyLlamaJson());
    const plain = train(createLlama(config, { seed: 2 }), 6, 2e-2);
    const model = createLlama(config, { seed: 2 });
    model.gradientCheckpointing = true;
    const ckpt = train(model, 6, 2e-2);
    ckpt.forEach((l, i) => expect(l).toBeCloseTo(plain[i]!, 5));
  });
});

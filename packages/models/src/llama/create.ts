// Fresh models with transformers' initialisation, drawn from a seeded generator.
import { Generator } from '@blora/tensor';
import { normal } from '@blora/autograd';
import type { LlamaConfig } from './config.js';
import { LlamaForCausalLM, type BuildOptions } from './model.js';

/** Options of `createLlama`. */
export interface CreateOptions extends BuildOptions {
  /** Random stream of the initial weights (default: a generator seeded with `seed`). */
  generator?: Generator;
  /** Seed of the default generator (default 0). */
  seed?: number;
}

/**
 * A model with fresh weights initialised as transformers does: projections and embeddings
 * normal with standard deviation `initializerRange`, norm weights at their neutral value (1 for
 * LLaMA / Mistral, 0 for Gemma's `1 + w`). Projections still go through the linear factory.
 */
export function createLlama(config: LlamaConfig, options: CreateOptions = {}): LlamaForCausalLM {
  const generator = options.generator ?? new Generator(options.seed ?? 0);
  const dtype = options.dtype ?? 'float32';
  const device = options.device ?? 'cpu';
  return new LlamaForCausalLM(config, (name, shape) => {
    if (name.endsWith('norm.weight')) return null;
    return normal(shape, 0, config.initializerRange, { dtype, device, generator });
  }, options);
}

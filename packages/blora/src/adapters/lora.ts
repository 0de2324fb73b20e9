// LoRA with PEFT's semantics: Δy = s · B · A · dropout(x), A [r, in] kaiming-uniform (a = √5),
// B [out, r] zeros, s = α / r (α / √r with rsLoRA).
import { Adapter, type AdapterOptions } from './adapter.js';

/**
 * A LoRA adapter for a layer `[outFeatures, inFeatures]`: `lora_A` `[r, in]`, `lora_B`
 * `[out, r]`, dropout on the input, scaling α / r (or α / √r with `useRslora`). Its tensors
 * are PEFT's (`lora_A.weight`, `lora_B.weight`), so adapter files move between the two.
 */
export class LoraAdapter extends Adapter {
  constructor(inFeatures: number, outFeatures: number, options: AdapterOptions) {
    super('lora', { inFeatures, outFeatures, lambdaIn: 1, lambdaOut: 1, form: 'factors' }, options);
  }
}

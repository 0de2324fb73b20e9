// Turning a model's linear layers into frozen 4-bit bases (the "load in 4 bits" step of
// QLoRA-style fine-tuning): NF4 for LoRA / Q-BLoRA, INT4 blocks for QA-BLoRA.
import { quantizeLinear, type QuantizeOptions } from '@blora/quant';
import { Linear, type Module } from '@blora/autograd';
import { AdaptedLinear } from './adapters/adapted-linear.js';
import { DEFAULT_EXCLUDED_HEAD } from './adapters/config.js';
import { replaceModuleAt } from './attach.js';
import { DenseBase } from './layers/dense-base.js';
import { QuantizedBase } from './layers/quantized-base.js';
import { modulesOutsideAdapters, targetEntryFor } from './targets.js';

/** Options of `quantizeModel`. */
export interface QuantizeModelOptions {
  /** Modules left dense (names or a regular expression, PEFT-style matching; default ['lm_head']). */
  exclude?: readonly string[] | string;
  /** Dispose the dense weights once quantized (default false: they may be shared). */
  disposeDense?: boolean;
}

/**
 * Replaces every dense linear layer (`Linear` or `DenseBase`) of `model`, except the excluded
 * ones, with a frozen `QuantizedBase` of `format` (the bias stays dense). Adapted layers are
 * left alone. Returns the paths of the quantized layers.
 */
export function quantizeModel(model: Module, format: QuantizeOptions, options: QuantizeModelOptions = {}): string[] {
  const exclude = options.exclude ?? [DEFAULT_EXCLUDED_HEAD];
  const done: string[] = [];
  for (const [name, m] of modulesOutsideAdapters(model)) {
    if (name === '' || m instanceof AdaptedLinear || targetEntryFor(exclude, name) !== null) continue;
    if (!(m instanceof Linear || m instanceof DenseBase)) continue;
    const bias = m.bias;
    const base = new QuantizedBase(quantizeLinear(m.weight, format), bias);
    replaceModuleAt(model, name, base);
    if (options.disposeDense) m.weight.dispose();
    done.push(name);
  }
  return done;
}

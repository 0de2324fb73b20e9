// Frozen quantized bases for checkpoints stored 4-bit: the factory that wraps each weight read
// as stored, and the widening of INT scales/offsets to float32 before an exact merge.
import { cast, clone, type Tensor } from '@blora/tensor';
import { IntBlockLinear } from '@blora/quant';
import type { Module } from '@blora/autograd';
import { holdsQuantizedWeight, type LlamaForCausalLM, type QuantizedLinearFactory } from '@blora/models';
import { replaceModuleAt } from '../attach.js';
import { QuantizedBase } from '../layers/quantized-base.js';

/** Makes each projection a checkpoint stores quantized into a frozen `QuantizedBase` over the weight as read. */
export const quantizedBaseFactory: QuantizedLinearFactory = (_name, weight) => new QuantizedBase(weight);

function widened(t: Tensor): Tensor {
  return t.dtype === 'float32' ? clone(t) : cast(t, 'float32');
}

/**
 * Replaces every `QuantizedBase` of `model` holding INT blocks with float16 scales and offsets
 * by one holding the same codes and the same α, β values in float32 (float16 → float32 is exact,
 * so the layer computes the same outputs). An exact QA-BLoRA merge then stores β + ΔW without
 * rounding it to float16. Returns the paths of the layers replaced.
 */
export function widenIntScales(model: Module): string[] {
  const done: string[] = [];
  for (const [name, m] of [...model.namedModules()]) {
    if (!(m instanceof QuantizedBase) || !(m.quantized instanceof IntBlockLinear) || m.quantized.scaleDType === 'float32') continue;
    const q = m.quantized;
    const wide = new IntBlockLinear({
      format: q.format, outFeatures: q.outFeatures, inFeatures: q.inFeatures, blockRows: q.blockRows, blockCols: q.blockCols,
      codes: clone(q.codes), scales: widened(q.scaleTensor), offsets: widened(q.offsetTensor),
    });
    replaceModuleAt(model, name, new QuantizedBase(wide, m.bias));
    q.dispose();
    done.push(name);
  }
  return done;
}

/** How `model`'s projections are stored: their formats in order, e.g. 'int4', 'nf4' or 'dense' ('dense + nf4' when mixed). */
export function storedFormats(model: LlamaForCausalLM): string {
  const formats = new Set<string>();
  for (const [, layer] of model.linearLayers()) formats.add(holdsQuantizedWeight(layer) ? layer.quantized.format : 'dense');
  return [...formats].sort().join(' + ');
}

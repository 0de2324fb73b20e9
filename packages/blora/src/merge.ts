// Folding trained adapters into their base layers.
// - exact: dense W ← W + ΔW; INT4/INT8 blocks: β_b ← β_b + ΔW(tile of b), codes and scales
//   untouched (needs every block inside one λout x λin tile, which QA-BLoRA guarantees);
// - dense: dequantize, add ΔW, keep a dense weight (full precision, 4-bit storage lost);
// - requantize: dense merge, then quantize again: the lossy path QLoRA / Q-BLoRA models take
//   to get back to 4 bits, reported with the re-quantization error.
import { add, cast, type DType, type Tensor } from '@blora/tensor';
import {
  errorStats, FourBitLinear, IntBlockLinear, quantizeLinear, type QuantErrorStats, type QuantizedLinear, type QuantizeOptions,
} from '@blora/quant';
import { noGrad } from '@blora/autograd';
import type { AdaptedLinear } from './adapters/adapted-linear.js';
import { assertBlocksInsideTiles } from './adapters/qablora.js';
import { replaceModuleAt, type AttachedAdapters } from './attach.js';
import { DenseBase } from './layers/dense-base.js';
import type { FrozenLinear } from './layers/frozen-linear.js';
import { QuantizedBase } from './layers/quantized-base.js';

/** How to merge (see the module notes): 'exact' (default), 'dense' or 'requantize'. */
export type MergeMode = 'exact' | 'dense' | 'requantize';

/** Options of `mergeLayer` / `mergeAdapters`. */
export interface MergeOptions {
  /** Default 'exact'. */
  mode?: MergeMode;
  /** 'requantize': the target format (default: the base's own format and block settings; NF4 for a dense base). */
  quantize?: QuantizeOptions;
  /** 'dense': dtype of the merged weight (default float32). */
  dtype?: DType;
}

/** What merging one layer did. */
export interface LayerMergeReport {
  /** Module path. */
  name: string;
  /** 'LoRA', 'Q-BLoRA' or 'QA-BLoRA'. */
  method: string;
  mode: MergeMode;
  /** `describe()` of the merged base. */
  result: string;
  /** Root mean square of ΔW: the size of the update that was merged. */
  deltaRms: number;
  /** Exact merges into INT blocks: the dtype the new offsets were rounded to (float16 offsets round the update). */
  offsetDType?: string;
  /** 'requantize': the re-quantized weight against the exact dense merge (quant's error statistics). */
  requantizationError?: QuantErrorStats;
}

/** Quantization options reproducing `q`'s format and block settings. */
export function sameFormatAs(q: QuantizedLinear): QuantizeOptions {
  if (q instanceof FourBitLinear) {
    return {
      format: q.format, blocksize: q.blocksize, doubleQuant: q.doubleQuant !== null,
      ...(q.doubleQuant ? { nestedBlocksize: q.doubleQuant.nestedBlocksize } : {}),
    };
  }
  if (q instanceof IntBlockLinear) return { format: q.format, blockRows: q.blockRows, blockCols: q.blockCols, scaleDType: q.scaleDType };
  throw new TypeError(`cannot reproduce the settings of ${q.describe()}; pass quantize options`);
}

function rms(t: Tensor): number {
  const v = t.toFloat64Array();
  let s = 0;
  for (const x of v) s += x * x;
  return v.length ? Math.sqrt(s / v.length) : 0;
}

/** The dense merged weight W + ΔW (W dequantized for a quantized base), float32 unless `dtype` says otherwise. */
export function mergedWeight(layer: AdaptedLinear, dtype: DType = 'float32'): Tensor {
  return noGrad(() => {
    const w = layer.base.denseWeight(dtype);
    const delta = layer.adapter.deltaWeight();
    const converted = delta.dtype === dtype ? delta : cast(delta, dtype);
    const sum = add(w, converted);
    for (const t of new Set([w, delta, converted])) t.dispose();
    return sum;
  });
}

/**
 * Throws, naming the layer and the reason, unless `layer` can be merged exactly: a dense base,
 * or INT blocks that each lie inside one λout x λin tile of the update.
 */
export function assertExactlyMergeable(layer: AdaptedLinear, name: string): void {
  const { base, adapter } = layer;
  if (base instanceof DenseBase) return;
  if (base instanceof QuantizedBase && base.quantized instanceof IntBlockLinear) {
    const q = base.quantized;
    assertBlocksInsideTiles(adapter.label, name, q.blockRows, q.blockCols, adapter.lambdaOut, adapter.lambdaIn);
    return;
  }
  const what = base instanceof QuantizedBase ? `${base.format} (absmax blocks without offsets)` : base.describe();
  throw new TypeError(`merge: layer '${name}' has a ${what} base, which cannot absorb the ${adapter.label} update exactly; ` +
    `merge with mode 'dense' (full-precision weight) or 'requantize' (quantize the merged weight again, lossy)`);
}

function exactMerge(layer: AdaptedLinear, name: string): { base: FrozenLinear; offsetDType?: string } {
  assertExactlyMergeable(layer, name);
  const { base, adapter } = layer;
  if (base instanceof DenseBase) {
    const delta = adapter.deltaWeight();
    base.addToWeight(delta);
    delta.dispose();
    return { base };
  }
  const q = (base as QuantizedBase).quantized as IntBlockLinear;
  const tiles = adapter.tileDelta();
  try {
    q.addTileConstants(tiles, adapter.lambdaOut, adapter.lambdaIn);
  } finally {
    tiles.dispose();
  }
  return { base, offsetDType: q.scaleDType };
}

/**
 * Merges one adapted layer and returns the base that replaces it, with a report. 'exact'
 * changes the base in place (dense weight or INT offsets); 'dense' and 'requantize' build a
 * new base. The adapter is left as it was.
 */
export function mergeLayer(layer: AdaptedLinear, options: MergeOptions = {}, name = layer.adapter.layerName): { base: FrozenLinear; report: LayerMergeReport } {
  const mode = options.mode ?? 'exact';
  const delta = layer.adapter.deltaWeight();
  const deltaRms = rms(delta);
  delta.dispose();
  const report = { name, method: layer.adapter.label, mode, deltaRms };
  if (mode === 'exact') {
    const { base, offsetDType } = exactMerge(layer, name);
    return { base, report: { ...report, result: base.describe(), ...(offsetDType ? { offsetDType } : {}) } };
  }
  if (mode === 'dense') {
    const base = new DenseBase(mergedWeight(layer, options.dtype ?? 'float32'), layer.base.bias);
    return { base, report: { ...report, result: base.describe() } };
  }
  if (mode === 'requantize') {
    const settings = options.quantize
      ?? (layer.base instanceof QuantizedBase ? sameFormatAs(layer.base.quantized) : { format: 'nf4' as const });
    const merged = mergedWeight(layer, 'float32');
    try {
      const q = quantizeLinear(merged, settings);
      const back = q.dequantize('float32');
      const requantizationError = errorStats(merged, back);
      back.dispose();
      const base = new QuantizedBase(q, layer.base.bias);
      return { base, report: { ...report, result: base.describe(), requantizationError } };
    } finally {
      merged.dispose();
    }
  }
  throw new TypeError(`merge: mode must be 'exact', 'dense' or 'requantize', got '${String(mode)}'`);
}

/**
 * Merges every adapter of `attached` and puts the merged bases in the model in place of the
 * adapted layers (the model then computes base + update with plain layers). The adapters'
 * tensors are disposed; the merged bases stay frozen. Returns one report per layer.
 */
export function mergeAdapters(attached: AttachedAdapters, options: MergeOptions = {}): LayerMergeReport[] {
  attached.assertAttached('mergeAdapters');
  // Check every layer before changing any, so an exact merge that cannot happen changes nothing.
  if ((options.mode ?? 'exact') === 'exact') {
    for (const [name, layer] of attached.layers) assertExactlyMergeable(layer, name);
  }
  const reports: LayerMergeReport[] = [];
  for (const [name, layer] of attached.layers) {
    const { base, report } = mergeLayer(layer, options, name);
    base.setRequiresGrad(false);
    replaceModuleAt(attached.model, name, base);
    layer.adapter.dispose();
    reports.push(report);
  }
  attached.markDetached();
  return reports;
}

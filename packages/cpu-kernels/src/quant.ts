// Native float32 products with quantized weights (the ops of @blora/quant): 'nf4Matmul' and
// 'nf4MatmulT' (NF4 / FP4), 'int4Matmul', 'int4MatmulT', 'int8Matmul', 'int8MatmulT'. The
// weight is decoded slice by slice inside the addon and never exists densely. Activations must
// be float32 with a dense last dim and batch dims that merge into one row stride; anything else
// (other dtypes, other layouts) goes to the TypeScript kernel. An addend (the ops' optional fifth
// input, attrs addLambda / addScale) is added to the float32 product afterwards, in place.
import { denseLowRankAddend } from '@blora/quant';
import type { Attrs, KernelFn, Tensor } from '@blora/tensor';
import { mergedRowStride } from './matmul.js';
import type { NativeAddon, QuantActivations } from './native.js';
import { f32Storage, isDense, isF32, u8Storage } from './tensors.js';

/** Process-wide settings of the quantized products (changed by configureCpuKernels). */
export const quantSettings: { activations: QuantActivations } = { activations: 'float32' };

/** How the addon walks the rows of activations x [..., k]: `rows` rows, `ldx` elements apart. */
interface RowLayout {
  rows: number;
  ldx: number;
}

/** The row layout of `x`, or null when its last dim is strided or its batch dims do not merge. */
export function activationRows(x: Tensor): RowLayout | null {
  if (!isF32(x) || x.rank === 0) return null;
  const k = x.shape[x.rank - 1]!;
  if (k > 1 && x.strides[x.rank - 1] !== 1) return null;
  const ldx = mergedRowStride(x);
  if (ldx === null) return null;
  return { rows: k === 0 ? 0 : x.numel / k, ldx };
}

/**
 * out[m, j] += fround(scale · addend[m, floor(j / λ)]) over the dense float32 product `out`
 * (the scaled addend computed in float32 as the device kernels do; a float64 addend in float64).
 */
function addAddend(out: Tensor, addend: Tensor | undefined, attrs: Attrs, factor?: Tensor): void {
  if (!addend) return;
  const lambda = attrs['addLambda'] as number;
  const scale = attrs['addScale'] as number;
  // A low-rank addend (its factor: input 5) is formed first, each dot product in float64 rounded once.
  const values = factor
    ? denseLowRankAddend(addend.toFloat64Array(), factor.toFloat64Array(), attrs['addRank'] as number, addend.dtype === 'float32')
    : addend.toFloat64Array();
  const round = addend.dtype === 'float32' ? Math.fround : (v: number) => v;
  const y = f32Storage(out);
  const n = out.shape[out.rank - 1]!;
  const width = n / lambda;
  for (let q = 0; q < values.length; q++) {
    const v = round(scale * values[q]!);
    const start = out.offset + Math.floor(q / width) * n + (q % width) * lambda;
    for (let e = 0; e < lambda; e++) y[start + e] = y[start + e]! + v;
  }
}

function dimsOf(attrs: Attrs): [number, number] {
  return [attrs['outFeatures'] as number, attrs['inFeatures'] as number];
}

/** The kernel of 'nf4Matmul' (y = x W^T) or, when `transposed`, 'nf4MatmulT' (dx = dy W). */
export function nativeFourBitMatmul(addon: NativeAddon, transposed: boolean, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [x, packed, absmax, table] = inputs as [Tensor, Tensor, Tensor, Tensor];
    const out = outputs[0]!;
    const layout = activationRows(x);
    if (!layout || !isDense(out, 'float32') || !isDense(packed, 'uint8') || !isDense(absmax, 'float32') || !isDense(table, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const [outFeatures, inFeatures] = dimsOf(attrs);
    addon.nf4MatmulF32(
      transposed, f32Storage(x), x.offset, layout.rows, layout.ldx,
      u8Storage(packed), packed.offset, f32Storage(absmax), absmax.offset, f32Storage(table), table.offset,
      f32Storage(out), out.offset, outFeatures, inFeatures, attrs['blocksize'] as number,
      quantSettings.activations === 'int8',
    );
    addAddend(out, inputs[4], attrs, inputs[5]);
  };
}

/** Scales and offsets the addon reads directly: both contiguous float32, or both float16. */
function blockParams(scales: Tensor, offsets: Tensor): boolean {
  return scales.dtype === offsets.dtype && (isDense(scales, 'float32') || isDense(scales, 'float16')) && offsets.isContiguous;
}

/** The kernel of 'int4Matmul' / 'int8Matmul' or, when `transposed`, 'int4MatmulT' / 'int8MatmulT'. */
export function nativeIntMatmul(addon: NativeAddon, bits: 4 | 8, transposed: boolean, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [x, codes, scales, offsets] = inputs as [Tensor, Tensor, Tensor, Tensor];
    const out = outputs[0]!;
    const layout = activationRows(x);
    if (!layout || !isDense(out, 'float32') || !isDense(codes, 'uint8') || !blockParams(scales, offsets)) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const [outFeatures, inFeatures] = dimsOf(attrs);
    addon.intMatmulF32(
      bits, transposed, f32Storage(x), x.offset, layout.rows, layout.ldx,
      u8Storage(codes), codes.offset,
      scales.storage.handle as Float32Array | Uint16Array, scales.offset,
      offsets.storage.handle as Float32Array | Uint16Array, offsets.offset,
      f32Storage(out), out.offset, outFeatures, inFeatures, attrs['blockRows'] as number, attrs['blockCols'] as number,
      quantSettings.activations === 'int8',
    );
    addAddend(out, inputs[4], attrs, inputs[5]);
  };
}

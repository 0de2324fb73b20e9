// The quantized-weight ops of @blora/quant on the cuda device (same op names, inputs and
// attrs as its CPU kernels). W is [out, in]:
// - `*Dequantize` and `dequantizeBlockwise8` decode on the GPU, bit-identical to the CPU;
// - `*Matmul` (y = x · Wᵀ) with at most `quantGemvMaxRows` activation rows runs a GEMV
//   kernel that reads each code once and decodes on the fly;
// - larger `*Matmul` and every `*MatmulT` (dx = dy · W) decode W into a scratch block of the
//   activation dtype, then run the device's GEMM (tensor cores for bfloat16 / float16).
//   The scratch block holds out · in elements for the duration of the op.
import { registerKernel, type Attrs, type DType, type Tensor } from '@blora/tensor';
import { bufferOf, layoutArg, tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { reshapeDense, withDense } from './dense.js';
import { withScratch } from './scratch.js';

/** How one quantized format decodes and multiplies, given dense descriptors of its tensors. */
interface WeightFormat {
  /** Writes W [out, in] into `out` (any float dtype, contiguous). */
  dequantize(weight: Float64Array[], out: Float64Array): void;
  /** y [M, out] = x [M, in] · Wᵀ for M <= quantGemvMaxRows. */
  gemv(x: Float64Array, weight: Float64Array[], out: Float64Array): void;
}

function dims(attrs: Attrs): { outFeatures: number; inFeatures: number } {
  return { outFeatures: attrs['outFeatures'] as number, inFeatures: attrs['inFeatures'] as number };
}

function fourBitFormat(attrs: Attrs): WeightFormat {
  const { outFeatures, inFeatures } = dims(attrs);
  const blocksize = attrs['blocksize'] as number;
  return {
    dequantize: ([packed, absmax, table], out) =>
      native().fourBitDequantize(packed!, absmax!, table!, out, outFeatures, inFeatures, blocksize),
    gemv: (x, [packed, absmax, table], out) =>
      native().fourBitGemv(x, packed!, absmax!, table!, out, outFeatures, inFeatures, blocksize),
  };
}

function intFormat(bits: 4 | 8, attrs: Attrs): WeightFormat {
  const { outFeatures, inFeatures } = dims(attrs);
  const blockRows = attrs['blockRows'] as number;
  const blockCols = attrs['blockCols'] as number;
  return {
    dequantize: ([codes, scales, offsets], out) =>
      native().intDequantize(codes!, scales!, offsets!, out, bits, outFeatures, inFeatures, blockRows, blockCols),
    gemv: (x, [codes, scales, offsets], out) =>
      native().intGemv(x, codes!, scales!, offsets!, out, bits, outFeatures, inFeatures, blockRows, blockCols),
  };
}

/** A dense [rows, cols] matrix of `dtype` at `address` + `offset` elements. */
function matrixArg(address: number, offset: number, dtype: DType, rows: number, cols: number): Float64Array {
  return layoutArg(address, offset, dtype, [rows, cols], [cols, 1]);
}

/**
 * y = x · Wᵀ (`transposed` false: x [..., in] -> [..., out]) or dx = dy · W (`transposed`
 * true: dy [..., out] -> [..., in]) for the weight given by `format` and its tensors.
 */
function quantizedMatmul(format: WeightFormat, x: Tensor, weight: readonly Tensor[], out: Tensor, attrs: Attrs, transposed: boolean): void {
  const { outFeatures, inFeatures } = dims(attrs);
  const k = transposed ? outFeatures : inFeatures;
  const n = transposed ? inFeatures : outFeatures;
  const rows = x.numel / k;
  if (rows === 0) return;
  const addon = native();
  const y = matrixArg(bufferOf(out).address, out.offset, out.dtype, rows, n);
  withDense([x, ...weight], ([xDense, ...w]) => {
    const a = reshapeDense(xDense!, [rows, k]);
    if (!transposed && rows <= addon.quantGemvMaxRows) {
      format.gemv(a, w, y);
      return;
    }
    withScratch(x.dtype, outFeatures * inFeatures, (scratch) => {
      format.dequantize(w, matrixArg(scratch, 0, x.dtype, outFeatures, inFeatures));
      // W as stored is [out, in]; the product wants Wᵀ [in, out] for y and W for dx.
      const b = transposed
        ? matrixArg(scratch, 0, x.dtype, outFeatures, inFeatures)
        : layoutArg(scratch, 0, x.dtype, [inFeatures, outFeatures], [1, inFeatures]);
      addon.matmul(a, b, y);
    });
  });
}

/** Registers one format's matmul, transposed matmul and dequantize ops under `prefix`. */
function registerFormat(prefix: string, formatOf: (attrs: Attrs) => WeightFormat): void {
  registerKernel(`${prefix}Matmul`, 'cuda', ([x, ...weight], [out], attrs) => {
    runKernel(`${prefix}Matmul`, [x!, ...weight, out!], () => quantizedMatmul(formatOf(attrs), x!, weight, out!, attrs, false));
  });
  registerKernel(`${prefix}MatmulT`, 'cuda', ([dy, ...weight], [out], attrs) => {
    runKernel(`${prefix}MatmulT`, [dy!, ...weight, out!], () => quantizedMatmul(formatOf(attrs), dy!, weight, out!, attrs, true));
  });
  registerKernel(`${prefix}Dequantize`, 'cuda', (weight, [out], attrs) => {
    runKernel(`${prefix}Dequantize`, [...weight, out!], () =>
      withDense(weight, (w) => formatOf(attrs).dequantize(w, tensorArg(out!))));
  });
}

/** Registers the nf4 (NF4 / FP4), int4 and int8 ops and dequantizeBlockwise8 for 'cuda'. */
export function registerQuantKernels(): void {
  registerFormat('nf4', fourBitFormat);
  registerFormat('int4', (attrs) => intFormat(4, attrs));
  registerFormat('int8', (attrs) => intFormat(8, attrs));
  registerKernel('dequantizeBlockwise8', 'cuda', ([codes, absmax, code], [out], attrs) => {
    runKernel('dequantizeBlockwise8', [codes!, absmax!, code!, out!], () =>
      withDense([codes!, absmax!, code!], ([c, a, table]) =>
        native().dequantizeBlockwise8(c!, a!, table!, tensorArg(out!), attrs['blocksize'] as number, attrs['offset'] as number)));
  });
}


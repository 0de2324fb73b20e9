// The quantized-weight ops of @blora/quant on cuda: dequantization bit-identical to the CPU,
// and y = x · Wᵀ / dx = dy · W through the GEMV kernels (M <= 16, aligned and unaligned rows)
// and the dequantize + GEMM path, for NF4 and INT4 / INT8 blocks with float16 and float32
// scales, every activation dtype, odd sizes and strided activations; the tensor-core GEMV and
// fused dequantize-GEMM kernels for 16-bit activations; against a plain-loop decode of the
// weight with a float64 product, the CPU kernels and dequantize-then-matmul; on Hopper the
// TMA + wgmma fused kernel too, forced for every size; the NF4 decode tile layout and its GEMV.
import { matmul, mul, setOpObserver, tensor, transpose, type DType, type OpRecord, type Tensor } from '@blora/tensor';
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import {
  dequantizeBlockwise8, FourBitLinear, IntBlockLinear, int4DecodeTiles, int4MatmulTiles, intDequantize, intMatmul, intMatmulT, NF4_CODE, nf4DecodeTiles,
  nf4Dequantize, nf4Matmul, nf4MatmulT, nf4MatmulTiles, type FourBitOpAttrs, type IntOpAttrs,
} from '@blora/quant';
import { describe, expect, it } from 'vitest';
import { cudaAvailable, setQuantGemmPath } from '@blora/cuda-kernels';
import { native } from '../../src/native.js';
import { FLOAT_DTYPES, makeTensor, roundTo, sizeOf, valuesFor, type Layout } from './helpers.js';

/** Seeded bytes. */
function bytes(n: number, seed: number): number[] {
  return Array.from(valuesFor('float64', n, seed, 0, 256), Math.floor);
}

/** A weight in both formats' host representation, plus its decoded values (plain loops, float32 steps). */
interface FourBitWeight {
  attrs: FourBitOpAttrs;
  packed: number[];
  absmax: Float64Array;
  table: Float64Array;
  dense: Float64Array;
}

function fourBitWeight(outFeatures: number, inFeatures: number, blocksize: number, seed: number): FourBitWeight {
  const n = outFeatures * inFeatures;
  const packed = bytes(Math.ceil(n / 2), seed);
  const absmax = roundTo(valuesFor('float32', Math.ceil(n / blocksize), seed + 1, 0.25, 1.5), 'float32');
  const table = Float64Array.from(NF4_CODE);
  const dense = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const byte = packed[i >> 1]!;
    dense[i] = Math.fround(table[i & 1 ? byte & 15 : byte >> 4]! * absmax[Math.floor(i / blocksize)]!);
  }
  return { attrs: { outFeatures, inFeatures, blocksize }, packed, absmax, table, dense };
}

interface IntWeight {
  bits: 4 | 8;
  attrs: IntOpAttrs;
  codes: number[];
  scaleDType: DType;
  scales: Float64Array;
  offsets: Float64Array;
  dense: Float64Array;
}

function intWeight(bits: 4 | 8, outFeatures: number, inFeatures: number, blockRows: number, blockCols: number, scaleDType: DType, seed: number): IntWeight {
  const n = outFeatures * inFeatures;
  const blocks = (outFeatures / blockRows) * (inFeatures / blockCols);
  const codes = bytes(bits === 4 ? Math.ceil(n / 2) : n, seed);
  const scales = roundTo(valuesFor('float32', blocks, seed + 1, 0.001, 0.05), scaleDType);
  const offsets = roundTo(valuesFor('float32', blocks, seed + 2, -0.4, 0.1), scaleDType);
  const dense = new Float64Array(n);
  for (let r = 0; r < outFeatures; r++) {
    for (let c = 0; c < inFeatures; c++) {
      const i = r * inFeatures + c;
      const q = bits === 8 ? codes[i]! : i & 1 ? codes[i >> 1]! & 15 : codes[i >> 1]! >> 4;
      const b = Math.floor(r / blockRows) * (inFeatures / blockCols) + Math.floor(c / blockCols);
      dense[i] = Math.fround(scales[b]! * q + offsets[b]!);
    }
  }
  return { bits, attrs: { outFeatures, inFeatures, blockRows, blockCols }, codes, scaleDType, scales, offsets, dense };
}

/** The weight's tensors on `device`. */
function fourBitTensors(w: FourBitWeight, device: string): Tensor[] {
  return [tensor(w.packed, { dtype: 'uint8', device }), tensor(w.absmax, { device }), tensor(w.table, { device })];
}

function intTensors(w: IntWeight, device: string): Tensor[] {
  return [tensor(w.codes, { dtype: 'uint8', device }), tensor(w.scales, { dtype: w.scaleDType, device }), tensor(w.offsets, { dtype: w.scaleDType, device })];
}

/** y = x Wᵀ (or dx = dy W when `transposed`) in float64 for x [rows, k]. */
function productRef(x: Float64Array, dense: Float64Array, outFeatures: number, inFeatures: number, transposed: boolean): Float64Array {
  const k = transposed ? outFeatures : inFeatures;
  const n = transposed ? inFeatures : outFeatures;
  const rows = x.length / k;
  const y = new Float64Array(rows * n);
  for (let m = 0; m < rows; m++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += x[m * k + c]! * (transposed ? dense[c * inFeatures + j]! : dense[j * inFeatures + c]!);
      y[m * n + j] = s;
    }
  }
  return y;
}

/** Rounding of a product of depth k: the GEMM of 16-bit activations also rounds the weight to their dtype. */
function productTolerance(dtype: DType, k: number): Tolerance {
  switch (dtype) {
    case 'float64': return { rtol: 1e-12, atol: 1e-12 * k };
    case 'float32': return { rtol: 1e-5, atol: 2e-6 * k };
    case 'float16': return { rtol: 4e-3, atol: 6e-3 * Math.sqrt(k) };
    default: return { rtol: 3e-2, atol: 4e-2 * Math.sqrt(k) };
  }
}

type Product = (x: Tensor, weight: Tensor[], transposed: boolean) => Tensor;

/** Checks x [...lead, k] on cuda against the float64 product and the CPU kernel. */
function checkProduct(lead: number[], k: number, n: number, dtype: DType, layout: Layout, dense: Float64Array,
  outFeatures: number, inFeatures: number, transposed: boolean, weightOn: (device: string) => Tensor[], product: Product): void {
  const shape = [...lead, k];
  const xv = roundTo(valuesFor(dtype, sizeOf(shape), k + n + lead.length), dtype);
  const expected = productRef(xv, dense, outFeatures, inFeatures, transposed);
  const results = ['cuda', 'cpu'].map((device) => {
    const x = makeTensor(xv, shape, dtype, device, layout);
    const weight = weightOn(device);
    const y = product(x, weight, transposed);
    expect(y.device).toBe(device);
    expect(y.shape).toEqual([...lead, n]);
    const values = y.toFloat64Array();
    for (const t of [x, y, ...weight]) t.dispose();
    return values;
  });
  const tol = productTolerance(dtype, k);
  assertClose(results[0]!, expected, tol);
  assertClose(results[0]!, results[1]!, tol);
}

/** Activation row counts: GEMV (1, 5, 16) and GEMM (17, 40), plus a 3-D batch. */
const LEADS = [[1], [5], [16], [17], [40], [2, 3]];

describe.skipIf(!cudaAvailable())('NF4 ops on cuda', () => {
  // in = 64: rows start on 16-byte boundaries (vector GEMV path); in = 24: they do not.
  const weights = [fourBitWeight(37, 64, 64, 1), fourBitWeight(37, 24, 32, 2), fourBitWeight(9, 64, 48, 3)];

  it('dequantizes bit-identically to the CPU into every float dtype', () => {
    for (const w of weights) {
      for (const dtype of FLOAT_DTYPES) {
        const [cuda, cpu] = ['cuda', 'cpu'].map((device) => {
          const parts = fourBitTensors(w, device);
          const out = nf4Dequantize(parts[0]!, parts[1]!, parts[2]!, w.attrs, dtype);
          expect(out.device).toBe(device);
          const raw = Array.from(out.toTypedArray());
          for (const t of [out, ...parts]) t.dispose();
          return raw;
        });
        expect(cuda).toEqual(cpu);
        if (dtype === 'float32') expect(cuda).toEqual(Array.from(w.dense));
      }
    }
  });

  it('nf4Matmul and nf4MatmulT through the GEMV and GEMM paths, every activation dtype', () => {
    for (const w of weights) {
      const run: Product = (x, [p, a, t], transposed) => (transposed ? nf4MatmulT : nf4Matmul)(x, p!, a!, t!, w.attrs);
      for (const dtype of FLOAT_DTYPES) {
        for (const lead of LEADS) {
          for (const transposed of [false, true]) {
            const [k, n] = transposed ? [w.attrs.outFeatures, w.attrs.inFeatures] : [w.attrs.inFeatures, w.attrs.outFeatures];
            checkProduct(lead, k, n, dtype, 'contiguous', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, transposed, (d) => fourBitTensors(w, d), run);
          }
        }
        checkProduct([3], w.attrs.inFeatures, w.attrs.outFeatures, dtype, 'strided', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, false, (d) => fourBitTensors(w, d), run);
        checkProduct([20], w.attrs.inFeatures, w.attrs.outFeatures, dtype, 'transposed', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, false, (d) => fourBitTensors(w, d), run);
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('INT4 / INT8 block ops on cuda', () => {
  const weights = [
    intWeight(4, 12, 64, 1, 32, 'float16', 10), // 1-D groups, vector GEMV path
    intWeight(4, 12, 40, 4, 8, 'float32', 11), // 2-D tiles, unaligned rows
    intWeight(8, 10, 48, 2, 16, 'float16', 12), // int8 codes, vector path (48 = 3 x 16)
    intWeight(8, 6, 20, 3, 5, 'float32', 13), // int8, unaligned
    intWeight(4, 8, 64, 8, 64, 'float32', 14), // one block per 8 rows
    intWeight(4, 6, 64, 2, 8, 'float16', 15), // vector path, several blocks per 16-byte load
  ];

  it('dequantizes bit-identically to the CPU into every float dtype', () => {
    for (const w of weights) {
      for (const dtype of FLOAT_DTYPES) {
        const [cuda, cpu] = ['cuda', 'cpu'].map((device) => {
          const [codes, scales, offsets] = intTensors(w, device);
          const out = intDequantize(w.bits, codes!, scales!, offsets!, w.attrs, dtype);
          expect(out.device).toBe(device);
          const raw = Array.from(out.toTypedArray());
          for (const t of [out, codes!, scales!, offsets!]) t.dispose();
          return raw;
        });
        expect(cuda).toEqual(cpu);
        if (dtype === 'float32') expect(cuda).toEqual(Array.from(w.dense));
      }
    }
  });

  it('intMatmul and intMatmulT through the GEMV and GEMM paths, every activation dtype', () => {
    for (const w of weights) {
      const run: Product = (x, [c, s, o], transposed) => (transposed ? intMatmulT : intMatmul)(w.bits, x, c!, s!, o!, w.attrs);
      for (const dtype of FLOAT_DTYPES) {
        for (const lead of LEADS) {
          for (const transposed of [false, true]) {
            const [k, n] = transposed ? [w.attrs.outFeatures, w.attrs.inFeatures] : [w.attrs.inFeatures, w.attrs.outFeatures];
            checkProduct(lead, k, n, dtype, 'contiguous', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, transposed, (d) => intTensors(w, d), run);
          }
        }
        checkProduct([4], w.attrs.inFeatures, w.attrs.outFeatures, dtype, 'strided', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, false, (d) => intTensors(w, d), run);
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('dequantizeBlockwise8 on cuda', () => {
  it('restores double-quantized absmax values bit-identically to the CPU', () => {
    const m = 700;
    const blocksize = 256;
    const codes = bytes(m, 20);
    const absmax = roundTo(valuesFor('float32', Math.ceil(m / blocksize), 21, 0.01, 0.2), 'float32');
    const code = roundTo(valuesFor('float32', 256, 22, -1, 1), 'float32');
    const offset = Math.fround(0.0371);
    const expected = codes.map((q, i) => Math.fround(Math.fround(code[q]! * absmax[Math.floor(i / blocksize)]!) + offset));
    const [cuda, cpu] = ['cuda', 'cpu'].map((device) => {
      const parts = [tensor(codes, { dtype: 'uint8', device }), tensor(absmax, { device }), tensor(code, { device })];
      const out = dequantizeBlockwise8(parts[0]!, parts[1]!, parts[2]!, { blocksize, offset });
      expect(out.device).toBe(device);
      const values = Array.from(out.toFloat64Array());
      for (const t of [out, ...parts]) t.dispose();
      return values;
    });
    expect(cuda).toEqual(expected);
    expect(cuda).toEqual(cpu);
  });
});

// Shapes the fused tensor-core kernels take (inFeatures % 32 == 0, power-of-two blocks,
// outFeatures % 8 == 0 for the transposed product): GEMV rows 1..16 on either side of 8,
// GEMM rows across the 128-row tile edge, output and reduction dims with partial tiles.
const FUSED_LEADS = [[1], [7], [9], [16], [17], [33], [130], [2, 70]];
const HALF_DTYPES: readonly DType[] = ['bfloat16', 'float16'];
const hopper = cudaAvailable() && native().wgmmaAvailable();

describe.skipIf(!cudaAvailable())('fused 4-bit kernels on cuda (tensor cores, 16-bit activations)', () => {
  it('nf4Matmul / nf4MatmulT: GEMV and fused GEMM against float64 and the CPU', () => {
    // [136, 160]: two partial 128-wide output tiles, three K steps of 64 (the last one half);
    // [72, 96]: blocksize 32, one partial 128-column GEMV chunk.
    for (const w of [fourBitWeight(136, 160, 64, 31), fourBitWeight(72, 96, 32, 32)]) {
      const run: Product = (x, [p, a, t], transposed) => (transposed ? nf4MatmulT : nf4Matmul)(x, p!, a!, t!, w.attrs);
      for (const dtype of HALF_DTYPES) {
        for (const lead of FUSED_LEADS) {
          for (const transposed of [false, true]) {
            const [k, n] = transposed ? [w.attrs.outFeatures, w.attrs.inFeatures] : [w.attrs.inFeatures, w.attrs.outFeatures];
            checkProduct(lead, k, n, dtype, 'contiguous', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, transposed, (d) => fourBitTensors(w, d), run);
          }
        }
        // A transposed activation view is made dense first, then takes the fused path too.
        checkProduct([40], w.attrs.inFeatures, w.attrs.outFeatures, dtype, 'transposed', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, false, (d) => fourBitTensors(w, d), run);
      }
    }
  });

  it('int4Matmul / int4MatmulT: 1-D groups and 2-D tiles (narrow and wide), float16 and float32 scales', () => {
    const weights = [
      intWeight(4, 72, 96, 1, 32, 'float16', 33), // 1-D groups of 32
      intWeight(4, 136, 128, 1, 64, 'float32', 34), // 1-D groups of 64, partial output tiles
      intWeight(4, 48, 64, 8, 4, 'float32', 35), // QA-BLoRA 8 x 4 tiles: eight blocks per 32 codes
      intWeight(4, 40, 96, 4, 8, 'float16', 36), // 4 x 8 tiles
      intWeight(4, 16, 32, 2, 1, 'float16', 37), // one column per block: pairs straddle blocks
    ];
    for (const w of weights) {
      const run: Product = (x, [c, s, o], transposed) => (transposed ? intMatmulT : intMatmul)(4, x, c!, s!, o!, w.attrs);
      for (const dtype of HALF_DTYPES) {
        for (const lead of FUSED_LEADS) {
          for (const transposed of [false, true]) {
            const [k, n] = transposed ? [w.attrs.outFeatures, w.attrs.inFeatures] : [w.attrs.inFeatures, w.attrs.outFeatures];
            checkProduct(lead, k, n, dtype, 'contiguous', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, transposed, (d) => intTensors(w, d), run);
          }
        }
      }
    }
  });

  it('the GEMV over more row sets than blocks the GPU holds at once (each block takes several)', () => {
    // 20000 rows = 1250 sets of 16, more than the resident blocks of any GPU it runs on, so the
    // blocks loop over row sets; the last set is partial.
    const nf4 = fourBitWeight(20000, 64, 64, 61);
    const int4 = intWeight(4, 20000, 96, 1, 32, 'float16', 62);
    for (const dtype of HALF_DTYPES) {
      for (const lead of [[1], [9]]) {
        checkProduct(lead, 64, 20000, dtype, 'contiguous', nf4.dense, 20000, 64, false, (d) => fourBitTensors(nf4, d),
          (x, [p, a, t]) => nf4Matmul(x, p!, a!, t!, nf4.attrs));
        checkProduct(lead, 96, 20000, dtype, 'contiguous', int4.dense, 20000, 96, false, (d) => intTensors(int4, d),
          (x, [c, sc, o]) => intMatmul(4, x, c!, sc!, o!, int4.attrs));
      }
    }
  });

  it('the GEMV reading a turn of scales in one load (rows of whole turns), in both of its launch shapes', () => {
    // Rows of 4 or 8 groups take the vector scale loads (float32 absmax, float16 and float32
    // alpha / beta, 1-D groups of 32 and 64, 2-D tiles of 8 rows); 40 rows leave the GPU with
    // more blocks than row sets (16 warps a block at M <= 8), 8000 rows do not (8 warps).
    const nf4 = [fourBitWeight(40, 512, 64, 71), fourBitWeight(8000, 256, 64, 72)];
    const int4 = [
      intWeight(4, 40, 512, 1, 64, 'float16', 73),
      intWeight(4, 40, 256, 1, 32, 'float32', 74),
      intWeight(4, 48, 512, 8, 64, 'float32', 75),
      intWeight(4, 8000, 256, 1, 64, 'float16', 76),
    ];
    for (const dtype of HALF_DTYPES) {
      for (const lead of [[1], [9]]) {
        for (const w of nf4) {
          checkProduct(lead, w.attrs.inFeatures, w.attrs.outFeatures, dtype, 'contiguous', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, false,
            (d) => fourBitTensors(w, d), (x, [p, a, t]) => nf4Matmul(x, p!, a!, t!, w.attrs));
        }
        for (const w of int4) {
          checkProduct(lead, w.attrs.inFeatures, w.attrs.outFeatures, dtype, 'contiguous', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, false,
            (d) => intTensors(w, d), (x, [c, sc, o]) => intMatmul(4, x, c!, sc!, o!, w.attrs));
        }
      }
    }
  });

  it.skipIf(!hopper)('the Hopper (TMA + wgmma) fused kernel, forced for every size: NF4 and INT4, both products', () => {
    // The GEMM path switch sends every fused product to the wgmma kernel (auto keeps small ones
    // on the mma.sync kernel): rows across the 128-row tile, [136, 160] with a half K step,
    // INT4 groups of 32 and 64 with float16 and float32 scales, 2-D tiles of 8 rows x 32 columns.
    const nf4 = fourBitWeight(136, 160, 64, 51);
    const int4 = [intWeight(4, 72, 96, 1, 32, 'float16', 52), intWeight(4, 136, 128, 1, 64, 'float32', 53), intWeight(4, 48, 64, 8, 32, 'float32', 54)];
    const previous = native().setGemmPath('wgmma');
    try {
      for (const dtype of HALF_DTYPES) {
        for (const lead of [[17], [130], [2, 70]]) {
          for (const transposed of [false, true]) {
            const [k, n] = transposed ? [nf4.attrs.outFeatures, nf4.attrs.inFeatures] : [nf4.attrs.inFeatures, nf4.attrs.outFeatures];
            checkProduct(lead, k, n, dtype, 'contiguous', nf4.dense, nf4.attrs.outFeatures, nf4.attrs.inFeatures, transposed, (d) => fourBitTensors(nf4, d),
              (x, [p, a, t], tr) => (tr ? nf4MatmulT : nf4Matmul)(x, p!, a!, t!, nf4.attrs));
            for (const w of int4) {
              const [ki, ni] = transposed ? [w.attrs.outFeatures, w.attrs.inFeatures] : [w.attrs.inFeatures, w.attrs.outFeatures];
              checkProduct(lead, ki, ni, dtype, 'contiguous', w.dense, w.attrs.outFeatures, w.attrs.inFeatures, transposed, (d) => intTensors(w, d),
                (x, [c, sc, o], tr) => (tr ? intMatmulT : intMatmul)(4, x, c!, sc!, o!, w.attrs));
            }
          }
        }
      }
    } finally {
      native().setGemmPath(previous);
    }
  });

  it('the dequantize + GEMM path (BLORA_CUDA_QUANT_GEMM=dequant) equals the fused kernel, which auto takes', () => {
    const w = fourBitWeight(136, 160, 64, 41);
    const iw = intWeight(4, 136, 128, 1, 64, 'float32', 42);
    const previous = setQuantGemmPath('fused');
    try {
      for (const dtype of HALF_DTYPES) {
        for (const rows of [100, 2051]) {  // on Hopper: the mma.sync kernel (under 128 rows), the wgmma one
          for (const transposed of [false, true]) {
            for (const [attrs, tensors, run] of [
              [w.attrs, fourBitTensors(w, 'cuda'), (x: Tensor, [p, a, t]: Tensor[]) => (transposed ? nf4MatmulT : nf4Matmul)(x, p!, a!, t!, w.attrs)],
              [iw.attrs, intTensors(iw, 'cuda'), (x: Tensor, [c, sc, o]: Tensor[]) => (transposed ? intMatmulT : intMatmul)(4, x, c!, sc!, o!, iw.attrs)],
            ] as const) {
              const k = transposed ? attrs.outFeatures : attrs.inFeatures;
              const x = makeTensor(roundTo(valuesFor(dtype, rows * k, 43 + rows), dtype), [rows, k], dtype, 'cuda', 'contiguous');
              setQuantGemmPath('fused');
              const fused = run(x, [...tensors]);
              setQuantGemmPath('dequant');
              const viaDense = run(x, [...tensors]);
              setQuantGemmPath('auto');
              const auto = run(x, [...tensors]);
              const tol = dtype === 'float16' ? { rtol: 2e-3, atol: 2e-3 } : { rtol: 1.6e-2, atol: 1.6e-2 };
              assertClose(viaDense.toFloat64Array(), fused.toFloat64Array(), tol);
              // auto is the fused kernel, bit for bit
              expect(Array.from(auto.toTypedArray())).toEqual(Array.from(fused.toTypedArray()));
              for (const t of [x, fused, viaDense, auto, ...tensors]) t.dispose();
            }
          }
        }
      }
    } finally {
      setQuantGemmPath(previous);
    }
    expect(() => setQuantGemmPath('fastest' as never)).toThrow(/setQuantGemmPath: expected auto, fused, dequant; got 'fastest'/);
  });

  it('the fused products agree with dequantize-then-matmul on the same device within the 16-bit weight rounding', () => {
    const w = fourBitWeight(136, 160, 64, 38);
    for (const dtype of HALF_DTYPES) {
      for (const rows of [3, 130]) {
        for (const transposed of [false, true]) {
          const [k] = transposed ? [w.attrs.outFeatures] : [w.attrs.inFeatures];
          const xv = roundTo(valuesFor(dtype, rows * k, 39 + rows), dtype);
          const x = makeTensor(xv, [rows, k], dtype, 'cuda', 'contiguous');
          const [p, a, t] = fourBitTensors(w, 'cuda');
          const fused = (transposed ? nf4MatmulT : nf4Matmul)(x, p!, a!, t!, w.attrs);
          const dense = nf4Dequantize(p!, a!, t!, w.attrs, dtype);
          const denseT = transposed ? dense : transpose(dense, 0, 1);
          const reference = matmul(x, denseT);
          // The dequantized weights are table · absmax rounded to the 16-bit dtype; the fused GEMV
          // rounds the table values and applies absmax to float32 sums. Either rounding moves a
          // term by at most u |x · w| (u = 2^-9 for bfloat16, 2^-12 for float16) and each output
          // is rounded once more, so the two paths differ by at most 2u (Σ |x · w| + |y|); the
          // check allows twice that.
          const eps = dtype === 'float16' ? 2 ** -10 : 2 ** -7;
          const got = fused.toFloat64Array(), want = reference.toFloat64Array();
          const n = transposed ? w.attrs.inFeatures : w.attrs.outFeatures;
          for (let m = 0; m < rows; m++) {
            for (let j = 0; j < n; j++) {
              let sumAbs = 0;
              for (let c = 0; c < k; c++) sumAbs += Math.abs(xv[m * k + c]! * w.dense[transposed ? c * n + j : j * k + c]!);
              const bound = eps * (sumAbs + Math.abs(want[m * n + j]!));
              if (!(Math.abs(got[m * n + j]! - want[m * n + j]!) <= bound)) {
                throw new Error(`element [${m}, ${j}] ${transposed ? 'dy·W' : 'x·Wᵀ'} ${dtype}: ${got[m * n + j]} vs ${want[m * n + j]} (bound ${bound})`);
              }
            }
          }
          for (const tensorToFree of [x, p!, a!, t!, fused, dense, reference]) tensorToFree.dispose();
          if (denseT !== dense) denseT.dispose();
        }
      }
    }
  });
});

/**
 * A weight in decoding mode (useDecodeTiles) on cuda: each product of 2 rows of a 16-bit dtype runs
 * one `tileOp`, settled from the second on (the first follows the tiles' build), with the result
 * of `plain`.
 */
function checkDecodingMode(q: { matmul(x: Tensor): Tensor }, tileOp: string, plain: (x: Tensor) => Tensor, seed: number): void {
  for (const dtype of HALF_DTYPES) {
    const x = tensor(roundTo(valuesFor(dtype, 2 * 512, seed), dtype), { shape: [2, 512], dtype, device: 'cuda' });
    const records: OpRecord[] = [];
    const previous = setOpObserver((r) => records.push(r));
    let y: Tensor;
    try {
      y = q.matmul(x);
    } finally {
      setOpObserver(previous);
    }
    const tileProducts = records.filter((r) => r.op === tileOp);
    expect(tileProducts.length).toBe(1);
    expect(tileProducts[0]!.attrs['settled']).toBe(dtype !== HALF_DTYPES[0]);
    const expected = plain(x);
    assertClose(y.toFloat64Array(), expected.toFloat64Array(), productTolerance(dtype, 512));
    for (const t of [x, y, expected]) t.dispose();
  }
}

describe.skipIf(!cudaAvailable())('the NF4 decode tile layout on cuda', () => {
  /** The weight's decode tiles built on `device` (code table last), as nf4MatmulTiles takes them. */
  function tilesOn(w: FourBitWeight, device: string): Tensor[] {
    const [packed, absmax, table] = fourBitTensors(w, device);
    const tiles = nf4DecodeTiles(packed!, absmax!, w.attrs);
    packed!.dispose();
    absmax!.dispose();
    return [tiles.codes, tiles.absmax, table!];
  }
  const run = (w: FourBitWeight): Product => (x, [c, a, t]) => nf4MatmulTiles(x, { codes: c!, absmax: a! }, t!, w.attrs);

  it('nf4DecodeTiles builds the CPU layout byte for byte (few and many row sets, a partial last one)', () => {
    for (const w of [fourBitWeight(40, 512, 64, 81), fourBitWeight(1000, 256, 64, 82)]) {
      const [gpu, cpu] = [tilesOn(w, 'cuda'), tilesOn(w, 'cpu')];
      expect(Array.from(gpu[0]!.toTypedArray() as Uint8Array)).toEqual(Array.from(cpu[0]!.toTypedArray() as Uint8Array));
      expect(Array.from(gpu[1]!.toFloat64Array())).toEqual(Array.from(cpu[1]!.toFloat64Array()));
      for (const t of [...gpu, ...cpu]) t.dispose();
    }
  });

  it('nf4MatmulTiles against float64 and the CPU: 1 to 40 rows (16 a launch), both 16-bit dtypes, strided x, an addend', () => {
    // 40 rows: fewer row sets than resident blocks; 8000: more.
    for (const w of [fourBitWeight(40, 512, 64, 83), fourBitWeight(8000, 256, 64, 84)]) {
      const { outFeatures, inFeatures } = w.attrs;
      for (const dtype of HALF_DTYPES) {
        for (const lead of [[1], [5], [16], [17], [40], [2, 3]]) {
          checkProduct(lead, inFeatures, outFeatures, dtype, 'contiguous', w.dense, outFeatures, inFeatures, false, (d) => tilesOn(w, d), run(w));
        }
        checkProduct([9], inFeatures, outFeatures, dtype, 'transposed', w.dense, outFeatures, inFeatures, false, (d) => tilesOn(w, d), run(w));
      }
    }
    // With an addend (float32, lambda 8): the same sum as on the CPU.
    const w = fourBitWeight(40, 512, 64, 85);
    const xv = roundTo(valuesFor('bfloat16', 3 * 512, 86), 'bfloat16');
    const av = valuesFor('float32', 3 * 5, 87);
    const [gpu, cpu] = ['cuda', 'cpu'].map((device) => {
      const tiles = tilesOn(w, device);
      const x = tensor(xv, { shape: [3, 512], dtype: 'bfloat16', device });
      const addend = { values: tensor(av, { shape: [3, 5], device }), lambda: 8, scale: 0.25 };
      const y = nf4MatmulTiles(x, { codes: tiles[0]!, absmax: tiles[1]! }, tiles[2]!, w.attrs, addend);
      const values = y.toFloat64Array();
      for (const t of [...tiles, x, y, addend.values]) t.dispose();
      return values;
    });
    assertClose(gpu!, cpu!, productTolerance('bfloat16', 512));
  });

  it('says why float32 activations cannot take it on cuda', () => {
    const w = fourBitWeight(16, 256, 64, 88);
    const tiles = tilesOn(w, 'cuda');
    const x = tensor(valuesFor('float32', 256, 89), { shape: [1, 256], device: 'cuda' });
    expect(() => nf4MatmulTiles(x, { codes: tiles[0]!, absmax: tiles[1]! }, tiles[2]!, w.attrs)).toThrow(/bfloat16 or float16 activations/);
    for (const t of [...tiles, x]) t.dispose();
  });

  it('dependent launches read what the kernel just before wrote: a chain of settled products (NF4 and INT4, tiles or not) equals the same chain run step by step', () => {
    // Each product's output is the next one's input (a square weight), right behind it in the
    // stream: a GEMV that read its activations before the kernel ahead finished would see stale
    // values. Read back after every step, each launch waits for the one before; both GEMV paths
    // are deterministic, so the two chains must agree bit for bit.
    const w = fourBitWeight(512, 512, 64, 92);
    const tiles = tilesOn(w, 'cuda');
    const [packed, absmax] = fourBitTensors(w, 'cuda');
    const table = tiles[2]!;
    const iw = intWeight(4, 512, 512, 1, 64, 'float16', 95);
    const [codes, scales, offsets] = intTensors(iw, 'cuda');
    // The INT4 scales as a transposed view: copied into scratch by a kernel just before each of its
    // products, which therefore must not read them early, settled or not.
    const scalesRows = Array.from({ length: 8 * 512 }, (_, i) => iw.scales[(i % 512) * 8 + Math.floor(i / 512)]!);
    const scalesT = tensor(scalesRows, { shape: [8, 512], dtype: 'float16', device: 'cuda' });
    const scalesView = transpose(scalesT);
    const intTiles = int4DecodeTiles(codes!, scales!, offsets!, iw.attrs);
    for (const rows of [1, 12]) {
      const xv = roundTo(valuesFor('bfloat16', rows * 512, 93 + rows), 'bfloat16');
      const chain = (stepwise: boolean): Float64Array[] => {
        const kept: Tensor[] = [];
        const outputs: Float64Array[] = [];
        const step = (t: Tensor): Tensor => {
          if (stepwise) outputs.push(t.toFloat64Array());
          kept.push(t);
          return t;
        };
        let x = step(tensor(xv, { shape: [rows, 512], dtype: 'bfloat16', device: 'cuda' }));
        for (let round = 0; round < 3; round++) {
          const y1 = step(nf4MatmulTiles(x, { codes: tiles[0]!, absmax: tiles[1]! }, table, { ...w.attrs, settled: true }));
          const y2 = step(nf4Matmul(y1, packed!, absmax!, table, { ...w.attrs, settled: true }));
          const y3 = step(intMatmul(4, y2, codes!, scalesView, offsets!, { ...iw.attrs, settled: true }));
          const y4 = step(int4MatmulTiles(y3, intTiles, { ...iw.attrs, settled: true }));
          const y5 = step(nf4MatmulTiles(y4, { codes: tiles[0]!, absmax: tiles[1]! }, table, w.attrs));
          x = step(mul(y5, 1 / 16384));  // keeps the values near 1 (each product scales them by ~8)
        }
        if (!stepwise) outputs.push(...kept.map((t) => t.toFloat64Array()));
        for (const t of kept) t.dispose();
        return outputs;
      };
      const stepwise = chain(true);
      const queued = chain(false);
      expect(queued.length).toBe(stepwise.length);
      for (let i = 0; i < stepwise.length; i++) expect(Array.from(queued[i]!)).toEqual(Array.from(stepwise[i]!));
      const last = stepwise[stepwise.length - 1]!;
      expect(last.some((v) => v !== 0) && last.every(Number.isFinite)).toBe(true);
    }
    for (const t of [...tiles, packed!, absmax!, codes!, scales!, offsets!, scalesView, scalesT, intTiles.codes, intTiles.scales, intTiles.offsets]) {
      t.dispose();
    }
  });

  it('FourBitLinear in decoding mode multiplies through the tiles (settled after the first product), with the same result as nf4Matmul', () => {
    const weight = tensor(valuesFor('float32', 48 * 512, 90, -0.1, 0.1), { shape: [48, 512] });
    const host = FourBitLinear.quantize(weight, { format: 'nf4', blocksize: 64 });
    const q = host.to('cuda');
    q.useDecodeTiles = true;
    checkDecodingMode(q, 'nf4MatmulTiles', (x) => nf4Matmul(x, q.packed, q.absmaxTensor(), q.table, q.opAttrs), 91);
    for (const held of [q, host]) held.dispose();
    weight.dispose();
  });
});

describe.skipIf(!cudaAvailable())('the INT4 decode tile layout on cuda', () => {
  /** The weight's decode tiles built on `device`, as int4MatmulTiles takes them. */
  function tilesOn(w: IntWeight, device: string): Tensor[] {
    const [codes, scales, offsets] = intTensors(w, device);
    const tiles = int4DecodeTiles(codes!, scales!, offsets!, w.attrs);
    for (const t of [codes!, scales!, offsets!]) t.dispose();
    return [tiles.codes, tiles.scales, tiles.offsets];
  }
  const run = (w: IntWeight): Product => (x, [c, s, o]) => int4MatmulTiles(x, { codes: c!, scales: s!, offsets: o! }, w.attrs);

  it('int4DecodeTiles builds the CPU layout byte for byte (float16 and float32 scales, a partial last row set)', () => {
    for (const w of [intWeight(4, 40, 512, 1, 64, 'float16', 101), intWeight(4, 1000, 256, 1, 64, 'float32', 102)]) {
      const [gpu, cpu] = [tilesOn(w, 'cuda'), tilesOn(w, 'cpu')];
      expect(Array.from(gpu[0]!.toTypedArray() as Uint8Array)).toEqual(Array.from(cpu[0]!.toTypedArray() as Uint8Array));
      for (const i of [1, 2]) {
        expect(gpu[i]!.dtype).toBe(w.scaleDType);
        expect(Array.from(gpu[i]!.toFloat64Array())).toEqual(Array.from(cpu[i]!.toFloat64Array()));
      }
      for (const t of [...gpu, ...cpu]) t.dispose();
    }
  });

  it('int4MatmulTiles against float64 and the CPU: 1 to 40 rows, both 16-bit dtypes, both scale dtypes, strided x', () => {
    for (const w of [intWeight(4, 40, 512, 1, 64, 'float16', 103), intWeight(4, 8000, 256, 1, 64, 'float32', 104)]) {
      const { outFeatures, inFeatures } = w.attrs;
      for (const dtype of HALF_DTYPES) {
        for (const lead of [[1], [5], [16], [17], [40], [2, 3]]) {
          checkProduct(lead, inFeatures, outFeatures, dtype, 'contiguous', w.dense, outFeatures, inFeatures, false, (d) => tilesOn(w, d), run(w));
        }
        checkProduct([9], inFeatures, outFeatures, dtype, 'transposed', w.dense, outFeatures, inFeatures, false, (d) => tilesOn(w, d), run(w));
      }
    }
  });

  it('IntBlockLinear in decoding mode multiplies through the tiles (settled after the first product), with the same result as intMatmul', () => {
    const weight = tensor(valuesFor('float32', 48 * 512, 105, -0.1, 0.1), { shape: [48, 512] });
    const host = IntBlockLinear.quantize(weight, { format: 'int4', groupSize: 64 });
    const q = host.to('cuda');
    q.useDecodeTiles = true;
    checkDecodingMode(q, 'int4MatmulTiles', (x) => intMatmul(4, x, q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs), 106);
    for (const held of [q, host]) held.dispose();
    weight.dispose();
  });
});

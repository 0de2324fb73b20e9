// The quantized-weight ops of @blora/quant on cuda: dequantization bit-identical to the CPU,
// and y = x · Wᵀ / dx = dy · W through the GEMV kernels (M <= 16, aligned and unaligned rows)
// and the dequantize + GEMM path, for NF4 and INT4 / INT8 blocks with float16 and float32
// scales, every activation dtype, odd sizes and strided activations; the tensor-core GEMV and
// fused dequantize-GEMM kernels for 16-bit activations; against a plain-loop decode of the
// weight with a float64 product, the CPU kernels and dequantize-then-matmul; on Hopper the
// TMA + wgmma fused kernel too, forced for every size. (The decode tile layout: quant-tiles.test.ts.)
import { matmul, tensor, transpose, type Tensor } from '@blora/tensor';
import { assertClose } from '@blora/tensor/testing';
import { dequantizeBlockwise8, intDequantize, intMatmul, intMatmulT, nf4Dequantize, nf4Matmul, nf4MatmulT } from '@blora/quant';
import { describe, expect, it } from 'vitest';
import { cudaAvailable, setQuantGemmPath } from '@blora/cuda-kernels';
import { native } from '../../src/native.js';
import { FLOAT_DTYPES, makeTensor, roundTo, valuesFor } from './helpers.js';
import { bytes, checkProduct, fourBitTensors, fourBitWeight, HALF_DTYPES, intTensors, intWeight, type Product } from './quant-fixtures.js';

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
const hopper = cudaAvailable() && native().wgmmaAvailable();

/**
 * Runs `check` on the kernels the fused products take: the automatic choice and, on Hopper
 * (where the automatic choice is always the wgmma kernel), the mma.sync kernel forced too.
 */
function onEveryFusedKernel(check: () => void): void {
  check();
  if (!hopper) return;
  const previous = native().setGemmPath('pipelined');
  try {
    check();
  } finally {
    native().setGemmPath(previous);
  }
}

describe.skipIf(!cudaAvailable())('fused 4-bit kernels on cuda (tensor cores, 16-bit activations)', () => {
  it('nf4Matmul / nf4MatmulT: GEMV and fused GEMM against float64 and the CPU', () => onEveryFusedKernel(() => {
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
  }));

  it('int4Matmul / int4MatmulT: 1-D groups and 2-D tiles (narrow and wide), float16 and float32 scales', () => onEveryFusedKernel(() => {
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
  }));

  it.skipIf(!hopper)('the Hopper fused kernel splits K over blocks when its tiles are too few for the SMs', () => {
    // [200, 1024] at 40 and 300 rows: 2-6 output tiles and 16 K steps, so each tile's steps are
    // split over several blocks and the last to finish sums the partials; dy·W of an INT4
    // [1024, 576] (5 tiles of 128 features, 16 K steps) the same way. A split product is deterministic: the
    // partials are summed in one order whichever block finishes last.
    const nf4 = fourBitWeight(200, 1024, 64, 61);
    const int4 = intWeight(4, 1024, 576, 1, 64, 'float16', 62);
    for (const dtype of HALF_DTYPES) {
      for (const rows of [40, 300]) {
        checkProduct([rows], 1024, 200, dtype, 'contiguous', nf4.dense, 200, 1024, false, (d) => fourBitTensors(nf4, d),
          (x, [p, a, t]) => nf4Matmul(x, p!, a!, t!, nf4.attrs));
        checkProduct([rows], 1024, 576, dtype, 'contiguous', int4.dense, 1024, 576, true, (d) => intTensors(int4, d),
          (x, [c, sc, o]) => intMatmulT(4, x, c!, sc!, o!, int4.attrs));
      }
    }
    const x = makeTensor(roundTo(valuesFor('bfloat16', 300 * 1024, 63), 'bfloat16'), [300, 1024], 'bfloat16', 'cuda', 'contiguous');
    const [p, a, t] = fourBitTensors(nf4, 'cuda');
    const first = nf4Matmul(x, p!, a!, t!, nf4.attrs), again = nf4Matmul(x, p!, a!, t!, nf4.attrs);
    expect(Array.from(again.toTypedArray())).toEqual(Array.from(first.toTypedArray()));
    for (const tensorToFree of [x, p!, a!, t!, first, again]) tensorToFree.dispose();
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
    // The GEMM path switch sends every fused product to the wgmma kernel (as auto does on
    // Hopper): rows across the 128-row tile, [136, 160] with a half K step,
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
        for (const rows of [100, 2051]) {  // on Hopper both on the wgmma kernel (one row of tiles, and many)
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

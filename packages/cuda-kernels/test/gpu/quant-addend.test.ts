// The quantized products with an addend (y = x · Wᵀ + s · repeatInterleave(z, λ), and the same
// for dx = dy · W) on every cuda path: the epilogue of the Hopper fused kernel and of the
// mma.sync one, and the extra pass after the GEMV and dequantize paths, against a float64
// reference and the CPU kernels. Then the fused adapter layer of @blora/blora (an adapter
// inside its NF4 / INT4 base's products) on cuda, forward and backward, against the same layer
// on the CPU and against the unfused composition on cuda. Low-rank addends (z = values · factorᵀ,
// an adapter's B product) in the tensor-core GEMVs' epilogue and formed first on the other paths.
import { cast, mul, sum, tensor, type DType } from '@blora/tensor';
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import { assignInPlace } from '@blora/autograd';
import { quantizeLinear, type FourBitLinear, type IntBlockLinear, type QuantizedLinear, type QuantizeOptions } from '@blora/quant';
import { AdaptedLinear, QABLoraAdapter, QBLoraAdapter, QuantizedBase, type Adapter } from '@blora/blora';
import { describe, expect, it } from 'vitest';
import { cudaAvailable, setQuantGemmPath } from '@blora/cuda-kernels';
import { native } from '../../src/native.js';
import { makeTensor, roundTo, sizeOf, valuesFor } from './helpers.js';

const hopper = cudaAvailable() && native().wgmmaAvailable();

/** A seeded float32 weight [out, in] quantized on the CPU. */
function quantized(out: number, inF: number, options: QuantizeOptions, seed: number): QuantizedLinear {
  const w = tensor(valuesFor('float32', out * inF, seed, -1, 1), { shape: [out, inF] });
  const q = quantizeLinear(w, options);
  w.dispose();
  return q;
}

/** x · Wᵀ (or x · W) + s · repeat(z, λ) in float64 for x [rows, k] and the dense W [out, in]. */
function reference(x: Float64Array, dense: Float64Array, out: number, inF: number, transposed: boolean, z: Float64Array,
  lambda: number, scale: number): Float64Array {
  const [k, n] = transposed ? [out, inF] : [inF, out];
  const rows = x.length / k;
  const y = new Float64Array(rows * n);
  for (let m = 0; m < rows; m++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += x[m * k + c]! * (transposed ? dense[c * inF + j]! : dense[j * inF + c]!);
      y[m * n + j] = s + scale * z[m * (n / lambda) + Math.floor(j / lambda)]!;
    }
  }
  return y;
}

function tolerance(dtype: DType, k: number): Tolerance {
  if (dtype === 'float32') return { rtol: 1e-5, atol: 2e-6 * k };
  return dtype === 'float16' ? { rtol: 4e-3, atol: 6e-3 * Math.sqrt(k) } : { rtol: 3e-2, atol: 4e-2 * Math.sqrt(k) };
}

/** The cuda paths a product can take, each set up by `enter` and undone by the function it returns. */
const PATHS: { name: string; rows: number[]; enter: () => () => void }[] = [
  { name: 'GEMV (forward) / fused GEMM (backward)', rows: [5], enter: () => () => {} },
  { name: 'mma.sync fused GEMM', rows: [40, 130], enter: () => { const p = native().setGemmPath('pipelined'); return () => native().setGemmPath(p); } },
  { name: 'dequantize + GEMM', rows: [130], enter: () => { const p = setQuantGemmPath('dequant'); return () => setQuantGemmPath(p); } },
  ...(hopper ? [{ name: 'Hopper fused GEMM', rows: [17, 130, 300], enter: () => { const p = native().setGemmPath('wgmma'); return () => native().setGemmPath(p); } }] : []),
];

describe.skipIf(!cudaAvailable())('quantized products with an addend on cuda', () => {
  const weights: [string, QuantizedLinear][] = [
    ['NF4 [136, 160] blocksize 64', quantized(136, 160, { format: 'nf4', blocksize: 64, doubleQuant: false }, 1)],
    ['INT4 [136, 128] groups of 64, float16 scales', quantized(136, 128, { format: 'int4', blockRows: 1, blockCols: 64, scaleDType: 'float16' }, 2)],
    ['INT4 [48, 64] tiles of 8 x 32, float32 scales', quantized(48, 64, { format: 'int4', blockRows: 8, blockCols: 32, scaleDType: 'float32' }, 3)],
    // 16 K steps forward: on Hopper each tile's steps are split over blocks, the addend added once.
    ['NF4 [200, 1024] blocksize 64', quantized(200, 1024, { format: 'nf4', blocksize: 64, doubleQuant: false }, 7)],
  ];

  for (const path of PATHS) {
    it(`${path.name}: both products, λ 1 / 2 / 8, bfloat16 and float16, against float64 and the CPU`, () => {
      const leave = path.enter();
      try {
        for (const [, q] of weights) {
          const onCuda = q.to('cuda');
          const dense = q.dequantize('float64').toFloat64Array();
          for (const transposed of [false, true]) {
            const [k, n] = transposed ? [q.outFeatures, q.inFeatures] : [q.inFeatures, q.outFeatures];
            for (const rows of path.rows) {
              for (const dtype of ['bfloat16', 'float16'] as const) {
                for (const lambda of [1, 2, 8]) {
                  const seed = rows + k + lambda;
                  const xv = roundTo(valuesFor(dtype, rows * k, seed), dtype);
                  const zv = roundTo(valuesFor('float32', rows * (n / lambda), seed + 1, -3, 3), 'float32');
                  const scale = 0.75;
                  const expected = reference(xv, dense, q.outFeatures, q.inFeatures, transposed, zv, lambda, scale);
                  const results = ([['cuda', onCuda], ['cpu', q]] as const).map(([device, weight]) => {
                    const x = makeTensor(xv, [rows, k], dtype, device, 'contiguous');
                    const z = tensor(zv, { shape: [rows, n / lambda], device });
                    const addend = { values: z, lambda, scale };
                    const y = transposed ? weight.matmulTransposed(x, addend) : weight.matmul(x, addend);
                    expect(y.dtype).toBe(dtype);
                    const v = y.toFloat64Array();
                    for (const t of [x, z, y]) t.dispose();
                    return v;
                  });
                  assertClose(results[0]!, expected, tolerance(dtype, k));
                  assertClose(results[0]!, results[1]!, tolerance(dtype, k));
                }
              }
            }
          }
          onCuda.dispose();
        }
      } finally {
        leave();
      }
    });
  }

  it('a float64 addend, float32 activations and a batch dim take the unfused paths and agree too', () => {
    const q = quantized(136, 160, { format: 'nf4', blocksize: 64, doubleQuant: false }, 4);
    const onCuda = q.to('cuda');
    const dense = q.dequantize('float64').toFloat64Array();
    for (const [xDtype, zDtype] of [['bfloat16', 'float64'], ['float32', 'float32']] as const) {
      const lead = [2, 70];
      const xv = roundTo(valuesFor(xDtype, sizeOf(lead) * 160, 5), xDtype);
      const zv = roundTo(valuesFor(zDtype, sizeOf(lead) * 68, 6), zDtype);
      const expected = reference(xv, dense, 136, 160, false, zv, 2, -1.5);
      const results = ([['cuda', onCuda], ['cpu', q]] as const).map(([device, weight]) => {
        const x = makeTensor(xv, [...lead, 160], xDtype, device, 'contiguous');
        const z = tensor(zv, { shape: [...lead, 68], dtype: zDtype, device });
        const y = weight.matmul(x, { values: z, lambda: 2, scale: -1.5 });
        const v = y.toFloat64Array();
        for (const t of [x, z, y]) t.dispose();
        return v;
      });
      assertClose(results[0]!, expected, tolerance(xDtype, 160));
      assertClose(results[0]!, results[1]!, tolerance(xDtype, 160));
    }
    onCuda.dispose();
    q.dispose();
  });
});

/** values [rows, rank] · factorᵀ (factor [width, rank]) in float64, each dot rounded once to float32 for a float32 addend. */
function lowRank(values: Float64Array, factor: Float64Array, rank: number, dtype: DType): Float64Array {
  const [rows, width] = [values.length / rank, factor.length / rank];
  const z = new Float64Array(rows * width);
  for (let m = 0; m < rows; m++) {
    for (let j = 0; j < width; j++) {
      let s = 0;
      for (let r = 0; r < rank; r++) s += values[m * rank + r]! * factor[j * rank + r]!;
      z[m * width + j] = dtype === 'float32' ? Math.fround(s) : s;
    }
  }
  return z;
}

describe.skipIf(!cudaAvailable())('quantized products with a low-rank addend on cuda', () => {
  const CASES: [string, QuantizedLinear, boolean][] = [
    ['NF4 [136, 160] blocksize 64', quantized(136, 160, { format: 'nf4', blocksize: 64, doubleQuant: false }, 11), false],
    ['INT4 [136, 128] groups of 64, float16 scales', quantized(136, 128, { format: 'int4', blockRows: 1, blockCols: 64, scaleDType: 'float16' }, 12), false],
    ['NF4 [272, 256] decode tiles', quantized(272, 256, { format: 'nf4', blocksize: 64, doubleQuant: false }, 13), true],
    ['INT4 [272, 256] decode tiles', quantized(272, 256, { format: 'int4', blockRows: 1, blockCols: 64, scaleDType: 'float16' }, 14), true],
  ];
  // [rows, activation dtype, addend dtype, transposed]: 1-16 rows of 16-bit activations reach a
  // tensor-core GEMV (its epilogue forms the dot products); the rest form z first.
  const RUNS: [number, DType, DType, boolean][] = [
    [1, 'bfloat16', 'float32', false], [5, 'float16', 'float32', false], [16, 'bfloat16', 'float32', false],
    [17, 'bfloat16', 'float32', false], [40, 'float16', 'float32', false], [5, 'float32', 'float32', false],
    [5, 'bfloat16', 'float64', false], [5, 'bfloat16', 'float32', true],
  ];
  const rank = 8;
  for (const [name, q, tiles] of CASES) {
    it(`${name}: λ 1 / 2 / 8 on the GEMV and the other paths, against float64 and the CPU`, () => {
      const onCuda = q.to('cuda') as FourBitLinear | IntBlockLinear;
      onCuda.useDecodeTiles = tiles;
      const dense = q.dequantize('float64').toFloat64Array();
      for (const [rows, xDtype, zDtype, transposed] of RUNS) {
        const [k, n] = transposed ? [q.outFeatures, q.inFeatures] : [q.inFeatures, q.outFeatures];
        for (const lambda of [1, 2, 8]) {
          const seed = rows + k + lambda;
          const xv = roundTo(valuesFor(xDtype, rows * k, seed), xDtype);
          const vv = roundTo(valuesFor(zDtype, rows * rank, seed + 1, -0.5, 0.5), zDtype);
          const fv = roundTo(valuesFor(zDtype, (n / lambda) * rank, seed + 2, -0.5, 0.5), zDtype);
          const scale = -0.75;
          const expected = reference(xv, dense, q.outFeatures, q.inFeatures, transposed, lowRank(vv, fv, rank, zDtype), lambda, scale);
          const results = ([['cuda', onCuda], ['cpu', q]] as const).map(([device, weight]) => {
            const x = makeTensor(xv, [rows, k], xDtype, device, 'contiguous');
            const values = tensor(vv, { shape: [rows, rank], dtype: zDtype, device });
            const factor = tensor(fv, { shape: [n / lambda, rank], dtype: zDtype, device });
            const addend = { values, factor, lambda, scale };
            const y = transposed ? weight.matmulTransposed(x, addend) : weight.matmul(x, addend);
            expect(y.dtype).toBe(xDtype);
            const v = y.toFloat64Array();
            for (const t of [x, values, factor, y]) t.dispose();
            return v;
          });
          assertClose(results[0]!, expected, tolerance(xDtype, k));
          assertClose(results[0]!, results[1]!, tolerance(xDtype, k));
        }
      }
      onCuda.dispose();
    });
  }
});

/** Copies the parameter values of `from` into `to` (same class and shapes). */
function copyParameters(from: Adapter, to: Adapter): void {
  const source = from.parameters();
  to.parameters().forEach((p, i) => {
    const v = source[i]!.to(p.device);
    assignInPlace(p, v);
    v.dispose();
  });
}

interface LayerRun {
  y: Float64Array;
  grads: Float64Array[];
}

/** Forward of `layer` on x, backward of sum(y · weights); y, dx and every adapter parameter's gradient. */
function runLayer(layer: AdaptedLinear, xv: Float64Array, shape: number[], device: string): LayerRun {
  const x = cast(tensor(xv, { shape, device }), 'bfloat16');
  x.requiresGrad = true;
  const params = layer.adapter.parameters();
  for (const p of params) p.grad = null;
  const y = layer.forward(x);
  const weights = cast(tensor(valuesFor('float32', y.numel, 77), { shape: y.shape, device }), 'bfloat16');
  sum(mul(y, weights)).backward();
  const result = { y: y.toFloat64Array(), grads: [x, ...params].map((p) => p.grad!.toFloat64Array()) };
  for (const t of [x, y, weights]) t.dispose();
  return result;
}

describe.skipIf(!cudaAvailable())('the fused adapter layer on a quantized base on cuda', () => {
  const CASES: [string, QuantizeOptions, (device: string) => Adapter][] = [
    ['Q-BLoRA λ 2 on NF4', { format: 'nf4', blocksize: 64 },
      (device) => new QBLoraAdapter(256, 192, { lambda: 2 }, { r: 4, alpha: 8, device })],
    ['QA-BLoRA (8, 32) on INT4 8 x 32 tiles', { format: 'int4', blockRows: 8, blockCols: 32 },
      (device) => new QABLoraAdapter(256, 192, { lambdaIn: 32, lambdaOut: 8 }, { r: 4, alpha: 8, device })],
  ];
  // [2, 80] rows: the fused GEMMs; [1, 4]: decoding, the B product a low-rank addend in the GEMV's epilogue.
  for (const [name, options, make] of CASES) for (const lead of [[2, 80], [1, 4]]) {
    it(`${name}, ${lead.join(' x ')} rows: output, dx and the adapter's gradients match the CPU and the unfused path`, () => {
      const q = quantized(192, 256, options, 8);
      const cpuAdapter = make('cpu');
      cpuAdapter.parameters().forEach((p, i) => {
        const v = tensor(valuesFor('float32', p.numel, 20 + i, -0.3, 0.3), { shape: p.shape });
        assignInPlace(p, v);
        v.dispose();
      });
      const cudaAdapter = make('cuda');
      copyParameters(cpuAdapter, cudaAdapter);
      const onCpu = new AdaptedLinear(new QuantizedBase(q), cpuAdapter);
      const onCuda = new AdaptedLinear(new QuantizedBase(q.to('cuda')), cudaAdapter);
      const shape = [...lead, 256];
      const xv = valuesFor('float32', sizeOf(shape), 9);
      const cpu = runLayer(onCpu, xv, shape, 'cpu');
      const fused = runLayer(onCuda, xv, shape, 'cuda');
      AdaptedLinear.fuseQuantizedBase = false;
      let unfused: LayerRun;
      try {
        unfused = runLayer(onCuda, xv, shape, 'cuda');
      } finally {
        AdaptedLinear.fuseQuantizedBase = true;
      }
      const bf16 = { rtol: 2e-2, atol: 6e-2 };
      // The parameters' gradients are float32 sums over 160 rows of bfloat16 gradients.
      const f32 = { rtol: 2e-2, atol: 2e-2 };
      for (const other of [cpu, unfused]) {
        assertClose(fused.y, other.y, bf16);
        assertClose(fused.grads[0]!, other.grads[0]!, bf16);
        fused.grads.slice(1).forEach((g, i) => assertClose(g, other.grads[i + 1]!, f32));
      }
      onCpu.dispose();
      onCuda.dispose();
    });
  }
});

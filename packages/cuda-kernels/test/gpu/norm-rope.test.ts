// rmsNorm (forward and backward) and rope on cuda: odd sizes, strided / transposed inputs,
// the Gemma offset, every float dtype, against float64 plain-loop references and the CPU.
import { execute, narrow, reshape, ropeTables, statsDTypeOf, tensor, type DType, type Tensor } from '@blora/tensor';
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { FLOAT_DTYPES, LAYOUTS, makeTensor, roundTo, sizeOf, valuesFor, type Layout } from './helpers.js';

/** Tolerance of a fused op computed in float32 (float64 for float64) from rounded inputs. */
function nnTolerance(dtype: DType): Tolerance {
  switch (dtype) {
    case 'float64': return { rtol: 1e-10, atol: 1e-12 };
    case 'float32': return { rtol: 2e-5, atol: 2e-6 };
    case 'float16': return { rtol: 3e-3, atol: 1e-3 };
    default: return { rtol: 2e-2, atol: 4e-3 };
  }
}

/** Runs an op with several outputs on `device`; returns their float64 values and frees everything. */
function runOp(op: string, build: (device: string) => Tensor[], outputs: { shape: number[]; dtype: DType }[], attrs: Record<string, unknown>, device: string): Float64Array[] {
  const inputs = build(device);
  const outs = execute(op, inputs, outputs, attrs);
  for (const o of outs) expect(o.device).toBe(device);
  const values = outs.map((o) => o.toFloat64Array());
  for (const t of [...inputs, ...outs]) t.dispose();
  return values;
}

/** Checks every output of `op` on cuda against the references and the CPU. */
function checkOutputs(op: string, build: (device: string) => Tensor[], outputs: { shape: number[]; dtype: DType }[], attrs: Record<string, unknown>, expected: ArrayLike<number>[], tols: Tolerance[]): void {
  const cuda = runOp(op, build, outputs, attrs, 'cuda');
  const cpu = runOp(op, build, outputs, attrs, 'cpu');
  cuda.forEach((values, i) => {
    assertClose(values, expected[i]!, tols[i]!);
    assertClose(values, cpu[i]!, tols[i]!);
  });
}

/** Float64 RMSNorm of rows of `d`: [y, rstd]. */
function rmsNormRef(x: Float64Array, w: Float64Array, d: number, eps: number, offset: number): [number[], number[]] {
  const y: number[] = [];
  const rstd: number[] = [];
  for (let base = 0; base < x.length; base += d) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[base + i]! ** 2;
    const r = 1 / Math.sqrt(ss / d + eps);
    rstd.push(r);
    for (let i = 0; i < d; i++) y.push(x[base + i]! * r * (offset + w[i]!));
  }
  return [y, rstd];
}

/** Float64 gradients of RMSNorm: [dx, dweight]. */
function rmsNormBackwardRef(dy: Float64Array, x: Float64Array, w: Float64Array, rstd: Float64Array, d: number, offset: number): [number[], number[]] {
  const dx: number[] = [];
  const dw = new Array<number>(d).fill(0);
  for (let row = 0; row * d < x.length; row++) {
    const r = rstd[row]!;
    let dot = 0;
    for (let i = 0; i < d; i++) dot += dy[row * d + i]! * (offset + w[i]!) * x[row * d + i]!;
    for (let i = 0; i < d; i++) {
      const xi = x[row * d + i]!;
      dx.push(r * (offset + w[i]!) * dy[row * d + i]! - (xi * r ** 3 * dot) / d);
      dw[i]! += dy[row * d + i]! * xi * r;
    }
  }
  return [dx, dw];
}

describe.skipIf(!cudaAvailable())('rmsNorm on cuda', () => {
  function check(dtype: DType, shape: number[], layout: Layout, offset: number): void {
    const d = shape[shape.length - 1]!;
    const rows = sizeOf(shape) / d;
    const stats = statsDTypeOf(dtype);
    const x = roundTo(valuesFor(dtype, sizeOf(shape), d + rows, -3, 3), dtype);
    const w = roundTo(valuesFor(dtype, d, 2, 0.5, 1.5), dtype);
    const eps = 1e-5;
    const [y, rstd] = rmsNormRef(x, w, d, eps, offset);
    const tol = nnTolerance(dtype);
    checkOutputs('rmsNorm', (dev) => [makeTensor(x, shape, dtype, dev, layout), makeTensor(w, [d], dtype, dev, layout === 'strided' ? 'strided' : 'contiguous')],
      [{ shape, dtype }, { shape: shape.slice(0, -1), dtype: stats }], { eps, offset }, [roundTo(y, dtype), roundTo(rstd, stats)], [tol, nnTolerance(stats)]);
    // Backward from a seeded dy and the reference rstd rounded to its dtype.
    const dy = roundTo(valuesFor(dtype, sizeOf(shape), 3), dtype);
    const rstdRounded = roundTo(rstd, stats);
    const [dx, dw] = rmsNormBackwardRef(dy, x, w, rstdRounded, d, offset);
    const dwTol = { rtol: tol.rtol!, atol: tol.atol! * Math.max(1, rows) };
    const backwardInputs = (dev: string) => [makeTensor(dy, shape, dtype, dev, layout), makeTensor(x, shape, dtype, dev, layout),
      makeTensor(w, [d], dtype, dev, 'contiguous'), tensor(rstdRounded, { shape: shape.slice(0, -1), dtype: stats, device: dev })];
    checkOutputs('rmsNormBackward', backwardInputs, [{ shape, dtype }, { shape: [d], dtype }], { offset, weightGrad: true },
      [roundTo(dx, dtype), roundTo(dw, dtype)], [tol, dwTol]);
    // A frozen weight: the same dx, dweight zeros.
    checkOutputs('rmsNormBackward', backwardInputs, [{ shape, dtype }, { shape: [d], dtype }], { offset, weightGrad: false },
      [roundTo(dx, dtype), new Float64Array(d)], [tol, { rtol: 0, atol: 0 }]);
  }

  it('normalizes rows of odd sizes in every float dtype and layout (Llama and Gemma weights)', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const layout of LAYOUTS) {
        check(dtype, [3, 5, 12], layout, 0);
        check(dtype, [7, 1], layout, 1);
      }
      check(dtype, [2, 1100], 'contiguous', 0);
      check(dtype, [300, 37], 'contiguous', 1); // dweight sums more than one chunk of rows
    }
  });

  it('reads whole rows in 16-byte packs where it can: hidden sizes, the largest packed row, one past it, short rows', () => {
    for (const dtype of FLOAT_DTYPES) {
      check(dtype, [5, 2048], 'contiguous', 0);
      check(dtype, [4, 520], 'contiguous', 1);
      check(dtype, [2, 16384], 'contiguous', 0); // 2048 packs of bfloat16: the most a block holds
      check(dtype, [2, 16392], 'contiguous', 0); // one pack more: the scalar kernels
    }
  });

  it('takes the scalar kernels for rows that do not start on a 16-byte boundary', () => {
    for (const dtype of ['bfloat16', 'float32'] as const) {
      const [rows, d] = [6, 512];
      const x = roundTo(valuesFor(dtype, rows * d, 11, -3, 3), dtype);
      const w = roundTo(valuesFor(dtype, d, 12, 0.5, 1.5), dtype);
      const [y, rstd] = rmsNormRef(x, w, d, 1e-5, 0);
      const stats = statsDTypeOf(dtype);
      // x one element into its storage: a contiguous view whose rows are not 16-byte aligned.
      const shifted = (dev: string) => {
        const base = tensor(Float64Array.from([0, ...x]), { dtype, device: dev });
        const view = reshape(narrow(base, 0, 1, rows * d), [rows, d]);
        base.dispose();
        return view;
      };
      checkOutputs('rmsNorm', (dev) => [shifted(dev), makeTensor(w, [d], dtype, dev, 'contiguous')],
        [{ shape: [rows, d], dtype }, { shape: [rows], dtype: stats }], { eps: 1e-5, offset: 0 }, [roundTo(y, dtype), roundTo(rstd, stats)],
        [nnTolerance(dtype), nnTolerance(stats)]);
    }
  });

  it('handles zero rows: rstd is empty, dweight is zero', () => {
    check('float32', [0, 12], 'contiguous', 0);
  });
});

/** Float64 rope of x [B, H, T, Dh] (row-major values) with tables [T, Dh/2]. */
function ropeRef(x: Float64Array, shape: number[], cos: Float64Array, sin: Float64Array, inverse: boolean): number[] {
  const [, , t, dh] = shape as [number, number, number, number];
  const half = dh / 2;
  const out = new Array<number>(x.length);
  for (let base = 0, row = 0; base < x.length; base += dh, row++) {
    const p = row % t;
    for (let i = 0; i < half; i++) {
      const c = cos[p * half + i]!;
      const s = (inverse ? -1 : 1) * sin[p * half + i]!;
      out[base + i] = x[base + i]! * c - x[base + i + half]! * s;
      out[base + i + half] = x[base + i + half]! * c + x[base + i]! * s;
    }
  }
  return out;
}

describe.skipIf(!cudaAvailable())('rope on cuda', () => {
  it('rotates strided and transposed x of every float dtype with float32 or same-dtype tables, both ways', () => {
    const shape = [2, 3, 7, 12];
    for (const dtype of FLOAT_DTYPES) {
      const x = roundTo(valuesFor(dtype, sizeOf(shape), 60), dtype);
      for (const tableDType of ['float32', dtype] as DType[]) {
        const tables = ropeTables(7, 12, 10000, { dtype: tableDType });
        const cos = tables.cos.toFloat64Array();
        const sin = tables.sin.toFloat64Array();
        tables.cos.dispose();
        tables.sin.dispose();
        for (const inverse of [false, true]) {
          for (const layout of LAYOUTS) {
            checkOutputs('rope', (dev) => [makeTensor(x, shape, dtype, dev, layout), makeTensor(cos, [7, 6], tableDType, dev, layout),
              makeTensor(sin, [7, 6], tableDType, dev, 'contiguous')], [{ shape, dtype }], { inverse },
            [roundTo(ropeRef(x, shape, cos, sin, inverse), dtype)], [nnTolerance(dtype)]);
          }
        }
      }
    }
  });

  it('undoes itself with inverse', () => {
    const shape = [1, 2, 5, 8];
    const x = roundTo(valuesFor('float32', sizeOf(shape), 61), 'float32');
    const { cos, sin } = ropeTables(5, 8, 500, { device: 'cuda' });
    const xt = makeTensor(x, shape, 'float32', 'cuda', 'contiguous');
    const [there] = execute('rope', [xt, cos, sin], [{ shape, dtype: 'float32' }], { inverse: false });
    const [back] = execute('rope', [there!, cos, sin], [{ shape, dtype: 'float32' }], { inverse: true });
    assertClose(back!.toFloat64Array(), x, { rtol: 1e-5, atol: 1e-6 });
    for (const t of [cos, sin, xt, there!, back!]) t.dispose();
  });
});

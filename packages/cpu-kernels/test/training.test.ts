// rmsNorm, cross-entropy (forward and backward) and AdamW against float64 references written
// with plain loops, on dense, row-strided and fallback layouts.
import { describe, expect, it } from 'vitest';
import {
  adamwStep, crossEntropy, crossEntropyBackward, execute, rmsNorm, rmsNormBackward, slice, tensor, type DType, type Tensor,
} from '@blora/tensor';
import { nonContiguousTensor, randomValues, seededRandom } from '@blora/tensor/testing';
import { cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, NATIVE } from './helpers.js';

type Layout = 'dense' | 'rows-apart' | 'strided' | 'float64';

/** A [rows, cols] tensor of row-major `values` in `layout`. */
function matrix(values: Float64Array, rows: number, cols: number, layout: Layout): Tensor {
  switch (layout) {
    case 'dense':
      return tensor(values, { shape: [rows, cols], dtype: 'float32' });
    case 'rows-apart': {
      // Rows cols + 5 apart at an offset, inside a NaN-padded buffer.
      const width = cols + 5;
      const wide = new Float64Array((rows + 1) * width).fill(Number.NaN);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) wide[(r + 1) * width + 2 + c] = values[r * cols + c]!;
      return slice(slice(tensor(wide, { shape: [rows + 1, width], dtype: 'float32' }), 0, 1), 1, 2, cols + 2);
    }
    case 'strided':
      return nonContiguousTensor(values, [rows, cols]);
    case 'float64':
      return tensor(values, { shape: [rows, cols], dtype: 'float64' });
  }
}

const LAYOUTS: readonly Layout[] = ['dense', 'rows-apart', 'strided', 'float64'];
const TOL = { rtol: 1e-5, atol: 1e-6 };
let seed = 900;

describe('rmsNorm float32', () => {
  /** Float64 forward and backward: y = x r g, dx = r g dy - x r^3 / D sum(dy g x), dw = sum over rows of dy x r. */
  function reference(x: Float64Array, w: Float64Array, dy: Float64Array, rows: number, d: number, eps: number, offset: number) {
    const y = new Float64Array(rows * d);
    const rstd = new Float64Array(rows);
    const dx = new Float64Array(rows * d);
    const dw = new Float64Array(d);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2;
      const inv = 1 / Math.sqrt((d > 0 ? ss / d : 0) + eps);
      rstd[r] = inv;
      let dot = 0;
      for (let i = 0; i < d; i++) dot += dy[r * d + i]! * (offset + w[i]!) * x[r * d + i]!;
      for (let i = 0; i < d; i++) {
        const g = offset + w[i]!;
        y[r * d + i] = x[r * d + i]! * inv * g;
        dx[r * d + i] = inv * g * dy[r * d + i]! - (x[r * d + i]! * inv ** 3 * dot) / d;
        dw[i]! += dy[r * d + i]! * x[r * d + i]! * inv;
      }
    }
    return { y, rstd, dx, dw };
  }

  it('matches the reference for odd sizes, offsets and every layout (strided and float64 run the TypeScript kernel)', () => {
    const shapes: [number, number][] = [[1, 1], [3, 5], [4, 17], [7, 64], [300, 40], [0, 4], [3, 0]];
    for (const layout of LAYOUTS) {
      for (const [rows, d] of shapes) {
        for (const offset of [0, 1]) {
          const xv = randomValues(rows * d, seed++, -2, 2);
          const wv = randomValues(d, seed++);
          const dyv = randomValues(rows * d, seed++);
          const ref = reference(xv, wv, dyv, rows, d, 1e-5, offset);
          const dtype: DType = layout === 'float64' ? 'float64' : 'float32';
          const x = matrix(xv, rows, d, layout);
          const dy = matrix(dyv, rows, d, layout);
          const w = tensor(wv, { shape: [d], dtype });
          inEveryMode(() => {
            const [y, rstd] = execute('rmsNorm', [x, w], [
              { shape: [rows, d], dtype },
              { shape: [rows], dtype: layout === 'float64' ? 'float64' : 'float32' },
            ], { eps: 1e-5, offset });
            expectClose(y!, ref.y, TOL);
            expectClose(rstd!, ref.rstd, TOL);
            const [dx, dw] = rmsNormBackward(dy, x, w, tensor(ref.rstd, { shape: [rows], dtype }), { offset });
            expectClose(dx, ref.dx, TOL);
            expectClose(dw, ref.dw, { rtol: 1e-5, atol: 1e-5 });
            const [dxFrozen, dwFrozen] = rmsNormBackward(dy, x, w, tensor(ref.rstd, { shape: [rows], dtype }), { offset, weightGrad: false });
            expectClose(dxFrozen, ref.dx, TOL);
            expectClose(dwFrozen, new Float64Array(d), { rtol: 0, atol: 0 });
          });
        }
      }
    }
  });

  it('batched input through the front end', () => {
    const xv = randomValues(2 * 3 * 8, seed++);
    const wv = randomValues(8, seed++);
    const ref = reference(xv, wv, new Float64Array(48), 6, 8, 1e-6, 0);
    const x = tensor(xv, { shape: [2, 3, 8] });
    const w = tensor(wv, { shape: [8] });
    inEveryMode(() => expectClose(rmsNorm(x, w), ref.y, TOL));
  });
});

describe('crossEntropy float32', () => {
  /** Float64 lse per row, the summed loss over rows not ignored, their count, and dlogits for dloss = 1. */
  function reference(x: Float64Array, targets: Int32Array, n: number, v: number, ignore: number, mean: boolean) {
    const lse = new Float64Array(n);
    let total = 0;
    let counted = 0;
    for (let r = 0; r < n; r++) {
      let max = -Infinity;
      for (let j = 0; j < v; j++) max = Math.max(max, x[r * v + j]!);
      let s = 0;
      for (let j = 0; j < v; j++) s += Math.exp(x[r * v + j]! - max);
      lse[r] = max === -Infinity ? -Infinity : max + Math.log(s);
      if (targets[r] === ignore) continue;
      total += lse[r]! - x[r * v + targets[r]!]!;
      counted++;
    }
    const scale = mean ? (counted > 0 ? 1 / counted : 0) : 1;
    const dlogits = new Float64Array(n * v);
    for (let r = 0; r < n; r++) {
      if (targets[r] === ignore) continue;
      for (let j = 0; j < v; j++) dlogits[r * v + j] = scale * (Math.exp(x[r * v + j]! - lse[r]!) - (j === targets[r] ? 1 : 0));
    }
    return { lse, loss: mean ? (counted > 0 ? total / counted : 0) : total, dlogits };
  }

  /** Targets in [0, v), every third one ignored. */
  function targetsFor(n: number, v: number, s: number): Int32Array {
    const rnd = seededRandom(s);
    return Int32Array.from({ length: n }, (_, i) => (i % 3 === 2 ? -100 : Math.floor(rnd() * v)));
  }

  it('matches the reference for odd vocabularies, both reductions and every layout', () => {
    const shapes: [number, number][] = [[1, 1], [5, 7], [33, 100], [20, 1000], [3, 2]];
    for (const layout of LAYOUTS) {
      for (const [n, v] of shapes) {
        for (const reduction of ['mean', 'sum'] as const) {
          const xv = randomValues(n * v, seed++, -6, 6);
          const tv = targetsFor(n, v, seed++);
          const ref = reference(xv, tv, n, v, -100, reduction === 'mean');
          const logits = matrix(xv, n, v, layout);
          const targets = tensor(tv, { dtype: 'int32' });
          const stats: DType = layout === 'float64' ? 'float64' : 'float32';
          inEveryMode(() => {
            const [loss, lse] = execute('crossEntropy', [logits, targets], [
              { shape: [], dtype: stats },
              { shape: [n], dtype: stats },
            ], { ignoreIndex: -100, reduction });
            expectClose(loss!, [ref.loss], { rtol: 1e-5, atol: 1e-5 });
            expectClose(lse!, ref.lse, TOL);
            const dloss = tensor(2.5, { dtype: stats });
            expectClose(crossEntropyBackward(dloss, logits, targets, tensor(ref.lse, { dtype: stats }), { reduction }),
              ref.dlogits.map((g) => 2.5 * g), TOL);
          });
        }
      }
    }
  });

  it('rows of -inf logits, every target ignored, and the error for a target out of range', () => {
    const xv = Float64Array.from([-Infinity, -Infinity, -Infinity, 1, 2, 3]);
    const logits = tensor(xv, { shape: [2, 3], dtype: 'float32' });
    inEveryMode(() => {
      const [, lse] = execute('crossEntropy', [logits, tensor([-100, 2], { dtype: 'int32' })], [
        { shape: [], dtype: 'float32' },
        { shape: [2], dtype: 'float32' },
      ], { ignoreIndex: -100, reduction: 'mean' });
      expectClose(lse!, [-Infinity, 3 + Math.log(Math.exp(-2) + Math.exp(-1) + 1)], TOL);
      expectClose(crossEntropy(logits, tensor([-100, -100], { dtype: 'int32' })), [0], TOL);
      expect(() => crossEntropy(logits, tensor([1, 3], { dtype: 'int32' }))).toThrow(/crossEntropy: target 3 at position 1 is out of range \[0, 3\)/);
      expect(() => crossEntropyBackward(tensor(1), logits, tensor([-1, 0], { dtype: 'int32' }), tensor([0, 0]))).toThrow(/crossEntropyBackward: target -1 at position 0/);
    });
  });
});

describe('adamwStep float32', () => {
  it('matches a float64 reference that stores m, v and the parameter in float32 each step', () => {
    const n = 1037;
    const attrs = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    const f = Math.fround;
    for (const gradLayout of ['dense', 'strided', 'float64-param'] as const) {
      inEveryMode(() => {
        const p0 = randomValues(n, seed);
        const refP = Float64Array.from(p0, f);
        const refM = new Float64Array(n);
        const refV = new Float64Array(n);
        const paramDType: DType = gradLayout === 'float64-param' ? 'float64' : 'float32';
        const param = tensor(p0, { dtype: paramDType });
        const m = tensor(new Float64Array(n), { dtype: paramDType });
        const v = tensor(new Float64Array(n), { dtype: paramDType });
        for (let step = 1; step <= 3; step++) {
          const gv = randomValues(n, seed + step);
          const grad = gradLayout === 'strided' ? nonContiguousTensor(gv, [n]) : tensor(gv, { dtype: paramDType });
          adamwStep(param, grad, m, v, { ...attrs, step });
          grad.dispose();
          for (let i = 0; i < n; i++) {
            const g = paramDType === 'float32' ? f(gv[i]!) : gv[i]!;
            const round = paramDType === 'float32' ? f : (x: number) => x;
            refM[i] = round(attrs.beta1 * refM[i]! + (1 - attrs.beta1) * g);
            refV[i] = round(attrs.beta2 * refV[i]! + (1 - attrs.beta2) * g * g);
            const update = (attrs.lr / (1 - attrs.beta1 ** step)) * refM[i]! / (Math.sqrt(refV[i]!) / Math.sqrt(1 - attrs.beta2 ** step) + attrs.eps);
            refP[i] = round(refP[i]! * (1 - attrs.lr * attrs.weightDecay) - update);
          }
        }
        expectClose(m, refM, { rtol: 1e-6, atol: 1e-9 });
        expectClose(v, refV, { rtol: 1e-6, atol: 1e-12 });
        expectClose(param, refP, { rtol: 1e-6, atol: 1e-7 });
      });
    }
  });
});

describe.skipIf(!NATIVE)('native rmsNorm, cross-entropy and AdamW kernels', () => {
  it('are registered, and reject arguments that reach outside the storage', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toEqual(expect.arrayContaining(['rmsNorm', 'rmsNormBackward', 'crossEntropy', 'crossEntropyBackward', 'adamwStep']));
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    const addon = result.addon;
    const buf = (k: number) => new Float32Array(k);
    expect(() => addon.rmsNormF32(buf(12), 0, 4, buf(4), 0, buf(12), 0, buf(3), 0, 3, 4, 1e-6, 0)).not.toThrow();
    expect(() => addon.rmsNormF32(buf(12), 0, 5, buf(4), 0, buf(12), 0, buf(3), 0, 3, 4, 1e-6, 0)).toThrow(/rmsNormF32: x reaches elements \[0, 13\] outside its storage of 12/);
    expect(() => addon.rmsNormBackwardF32(buf(12), 0, 4, buf(12), 0, 4, buf(4), 0, buf(3), 0, buf(12), 0, buf(3), 0, 3, 4, 0)).toThrow(/dweight reaches/);
    const targets = Int32Array.of(0, 5);
    expect(() => addon.crossEntropyF32(buf(8), 0, 4, targets, 0, buf(2), 0, 2, 4, -100)).toThrow(/crossEntropyF32: target 5 at position 1 is out of range \[0, 4\)/);
    expect(() => addon.crossEntropyF32(buf(8), 0, 4, Int32Array.of(0, 1), 1, buf(2), 0, 2, 4, -100)).toThrow(/targets reaches elements \[1, 2\]/);
    expect(() => addon.crossEntropyBackwardF32(buf(8), 0, 4, Int32Array.of(0, 1), 0, buf(2), 0, buf(7), 0, 2, 4, -100, 1)).toThrow(/dlogits reaches/);
    expect(() => addon.adamwStepF32(buf(4), 0, buf(3), 0, buf(4), 0, buf(4), 0, 4, 0.9, 0.999, 1e-8, 1, 1, 1)).toThrow(/adamwStepF32: grad reaches elements \[0, 3\] outside its storage of 3/);
  });
});

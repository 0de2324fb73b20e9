// crossEntropy and crossEntropyBackward on cuda: vocab 37 and a long row, ignored targets,
// 'mean' and 'sum', strided and transposed logits, every float dtype, rows of -Infinity, and
// the error for an out-of-range target, against float64 references and the CPU.
import { crossEntropy, crossEntropyBackward, execute, statsDTypeOf, tensor, type DType, type Tensor } from '@blora/tensor';
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { FLOAT_DTYPES, LAYOUTS, makeTensor, roundTo, valuesFor, type Layout } from './helpers.js';

const IGNORE = -100;

function tolerance(dtype: DType): Tolerance {
  switch (dtype) {
    case 'float64': return { rtol: 1e-10, atol: 1e-12 };
    case 'float32': return { rtol: 2e-5, atol: 2e-6 };
    case 'float16': return { rtol: 3e-3, atol: 2e-4 };
    default: return { rtol: 2e-2, atol: 2e-3 };
  }
}

/** Float64 [loss, lse[], dlogits[]] for logits [n, v] (row-major), with dloss = g. */
function reference(x: Float64Array, targets: number[], v: number, mean: boolean, g: number): [number, number[], number[]] {
  const lse: number[] = [];
  let total = 0;
  let counted = 0;
  targets.forEach((t, row) => {
    let max = -Infinity;
    for (let j = 0; j < v; j++) max = Math.max(max, x[row * v + j]!);
    let s = 0;
    for (let j = 0; j < v; j++) s += Math.exp(x[row * v + j]! - max);
    const l = max === -Infinity ? -Infinity : max + Math.log(s);
    lse.push(l);
    if (t !== IGNORE) {
      total += l - x[row * v + t]!;
      counted++;
    }
  });
  const loss = mean ? (counted > 0 ? total / counted : 0) : total;
  const scale = mean ? (counted > 0 ? g / counted : 0) : g;
  const grad: number[] = [];
  targets.forEach((t, row) => {
    for (let j = 0; j < v; j++) {
      grad.push(t === IGNORE ? 0 : scale * (Math.exp(x[row * v + j]! - lse[row]!) - (j === t ? 1 : 0)));
    }
  });
  return [loss, lse, grad];
}

interface Results {
  loss: number;
  lse: Float64Array;
  grad: Float64Array;
}

function run(device: string, x: Float64Array, targets: number[], v: number, dtype: DType, layout: Layout, mean: boolean, g: number): Results {
  const n = targets.length;
  const logits = makeTensor(x, [n, v], dtype, device, layout);
  const t = tensor(targets, { dtype: 'int32', device });
  const attrs = { ignoreIndex: IGNORE, reduction: mean ? 'mean' : 'sum' };
  const stats = statsDTypeOf(dtype);
  const [loss, lse] = execute('crossEntropy', [logits, t], [{ shape: [], dtype: stats }, { shape: [n], dtype: stats }], attrs);
  const dloss = tensor(g, { dtype: stats, device });
  const grad = crossEntropyBackward(dloss, logits, t, lse!, { ignoreIndex: IGNORE, reduction: mean ? 'mean' : 'sum' });
  expect(grad.device).toBe(device);
  const out = { loss: loss!.item(), lse: lse!.toFloat64Array(), grad: grad.toFloat64Array() };
  for (const z of [logits, t, loss!, lse!, dloss, grad] as Tensor[]) z.dispose();
  return out;
}

function check(dtype: DType, v: number, layout: Layout, mean: boolean, targets: number[], x: Float64Array): void {
  const g = 1.75;
  const [loss, lse, grad] = reference(x, targets, v, mean, g);
  const tol = tolerance(dtype);
  const stats = tolerance(statsDTypeOf(dtype));
  const cuda = run('cuda', x, targets, v, dtype, layout, mean, g);
  const cpu = run('cpu', x, targets, v, dtype, layout, mean, g);
  assertClose([cuda.loss], [loss], { rtol: stats.rtol! * 5, atol: stats.atol! });
  assertClose([cuda.loss], [cpu.loss], { rtol: stats.rtol! * 5, atol: stats.atol! });
  assertClose(cuda.lse, roundTo(lse, statsDTypeOf(dtype)), stats);
  assertClose(cuda.lse, cpu.lse, stats);
  assertClose(cuda.grad, roundTo(grad, dtype), tol);
  assertClose(cuda.grad, cpu.grad, tol);
}

describe.skipIf(!cudaAvailable())('crossEntropy on cuda', () => {
  it('loss, lse and gradient for every float dtype, layout and reduction, with ignored tokens', () => {
    const n = 7;
    const v = 37;
    const targets = [3, IGNORE, 0, 36, 17, IGNORE, 5];
    for (const dtype of FLOAT_DTYPES) {
      const x = roundTo(valuesFor(dtype, n * v, 70, -4, 4), dtype);
      for (const layout of LAYOUTS) {
        for (const mean of [true, false]) check(dtype, v, layout, mean, targets, x);
      }
    }
  });

  it('a long vocabulary row, every token ignored, and a row of -Infinity logits', () => {
    for (const dtype of FLOAT_DTYPES) {
      check(dtype, 5000, 'contiguous', true, [4999, 0, 2500], roundTo(valuesFor(dtype, 15000, 71, -8, 8), dtype));
      check(dtype, 9, 'contiguous', true, [IGNORE, IGNORE, IGNORE, IGNORE], roundTo(valuesFor(dtype, 36, 72), dtype));
      const x = roundTo(valuesFor(dtype, 18, 73), dtype);
      for (let j = 0; j < 9; j++) x[9 + j] = -Infinity;
      check(dtype, 9, 'contiguous', true, [1, IGNORE], x);
    }
  });

  it('an out-of-range target throws naming its position, forward and backward', () => {
    const logits = makeTensor(valuesFor('float32', 4 * 37, 74), [4, 37], 'float32', 'cuda', 'contiguous');
    const bad = tensor([1, 2, 40, -3], { dtype: 'int32', device: 'cuda' });
    expect(() => crossEntropy(logits, bad)).toThrow(/crossEntropy: target 40 at position 2 is out of range \[0, 37\)/);
    const good = tensor([1, 2, 3, IGNORE], { dtype: 'int32', device: 'cuda' });
    const [, lse] = execute('crossEntropy', [logits, good], [{ shape: [], dtype: 'float32' }, { shape: [4], dtype: 'float32' }],
      { ignoreIndex: IGNORE, reduction: 'mean' });
    const dloss = tensor(1, { device: 'cuda' });
    const negative = tensor([1, -3, 2, 3], { dtype: 'int32', device: 'cuda' });
    expect(() => crossEntropyBackward(dloss, logits, negative, lse!)).toThrow(/crossEntropyBackward: target -3 at position 1 is out of range/);
    for (const t of [logits, bad, good, lse!, dloss, negative]) t.dispose();
  });
});

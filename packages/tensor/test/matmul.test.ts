import { describe, expect, it } from 'vitest';
import {
  cpuBackend, expand, matmul, permute, registerBackend, reshape, setOpObserver, slice, tensor, transpose,
  type DType, type OpRecord, type Tensor,
} from '../src/index.js';
import { matmulScratchElements } from '../src/cpu/matmul.js';
import { assertClose, nonContiguousTensor, randomTensor, randomValues } from '../src/testing.js';

/** NumPy matmul on float64 values with plain loops (1-D promotion, batch broadcasting). */
function referenceMatmul(a: Tensor, b: Tensor): { values: Float64Array; shape: number[] } {
  const av = a.toFloat64Array();
  const bv = b.toFloat64Array();
  const aShape = a.rank === 1 ? [1, a.shape[0]!] : [...a.shape];
  const bShape = b.rank === 1 ? [b.shape[0]!, 1] : [...b.shape];
  const m = aShape[aShape.length - 2]!;
  const k = aShape[aShape.length - 1]!;
  const n = bShape[bShape.length - 1]!;
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const rank = Math.max(aBatch.length, bBatch.length);
  const pad = (s: number[]) => [...new Array<number>(rank - s.length).fill(1), ...s];
  const pa = pad(aBatch);
  const pb = pad(bBatch);
  const batch = pa.map((d, i) => Math.max(d, pb[i]!));
  const count = batch.reduce((p, d) => p * d, 1);
  const values = new Float64Array(count * m * n);
  for (let bi = 0; bi < count; bi++) {
    // Unravel the batch index, then locate each operand's matrix (size-1 dims repeat).
    let rest = bi;
    let aIndex = 0;
    let bIndex = 0;
    let aMul = 1;
    let bMul = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rest % batch[d]!;
      rest = Math.floor(rest / batch[d]!);
      aIndex += (pa[d] === 1 ? 0 : c) * aMul;
      bIndex += (pb[d] === 1 ? 0 : c) * bMul;
      aMul *= pa[d]!;
      bMul *= pb[d]!;
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += av[aIndex * m * k + i * k + p]! * bv[bIndex * k * n + p * n + j]!;
        values[bi * m * n + i * n + j] = s;
      }
    }
  }
  const shape = [...batch, m, n];
  if (a.rank === 1) shape.splice(shape.length - 2, 1);
  if (b.rank === 1) shape.splice(shape.length - 1, 1);
  return { values, shape };
}

const tolerances: Record<string, { rtol: number; atol: number }> = {
  float64: { rtol: 1e-12, atol: 1e-12 },
  float32: { rtol: 1e-5, atol: 1e-5 },
  bfloat16: { rtol: 1e-2, atol: 1e-2 },
  float16: { rtol: 2e-3, atol: 2e-3 },
};

function check(a: Tensor, b: Tensor): Tensor {
  const out = matmul(a, b);
  const ref = referenceMatmul(a, b);
  expect(out.shape).toEqual(ref.shape);
  expect(out.dtype).toBe(a.dtype);
  assertClose(out, ref.values, tolerances[a.dtype]);
  return out;
}

let seed = 1;
const rand = (shape: number[], dtype: DType = 'float32') => randomTensor(shape, { seed: seed++, dtype });

describe('matmul', () => {
  it('2-D shapes including 1x1 and odd sizes', () => {
    for (const [m, k, n] of [[1, 1, 1], [2, 3, 4], [7, 13, 5], [65, 33, 129], [5, 1, 3], [1, 17, 1], [4, 4, 4], [8, 9, 8]]) {
      for (const dtype of ['float32', 'float64'] as const) check(rand([m!, k!], dtype), rand([k!, n!], dtype));
    }
  });

  it('crosses every blocking boundary (depth, rows and columns panels)', () => {
    check(rand([3, 300]), rand([300, 5])); // depth above one packed block
    check(rand([2, 3], 'float64'), rand([3, 520], 'float64')); // columns above one packed panel
    check(rand([70, 2]), rand([2, 6])); // rows above one packed block
  });

  it('1-D operands are promoted and squeezed back', () => {
    check(rand([5]), rand([5])); // dot product -> scalar
    check(rand([5]), rand([5, 3]));
    check(rand([4, 5]), rand([5]));
    check(rand([4]), rand([2, 4, 3]));
    check(rand([2, 3, 4]), rand([4]));
    expect(matmul(tensor([1, 2, 3]), tensor([4, 5, 6])).shape).toEqual([]);
    expect(matmul(tensor([1, 2, 3]), tensor([4, 5, 6])).item()).toBe(32);
  });

  it('broadcasts batch dims', () => {
    check(rand([2, 1, 3, 4]), rand([5, 4, 6]));
    check(rand([3, 2, 5], 'float64'), rand([5, 4], 'float64')); // shared right operand
    check(rand([2, 3]), rand([4, 3, 2]));
    check(rand([1, 3, 2, 3]), rand([2, 1, 3, 3]));
  });

  it('reads transposed, sliced, permuted and expanded operands through their strides', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      check(transpose(rand([13, 7], dtype)), rand([13, 5], dtype)); // column-major A
      check(rand([7, 13], dtype), transpose(rand([5, 13], dtype))); // column-major B (x @ W^T)
      check(transpose(rand([33, 65], dtype)), transpose(rand([129, 33], dtype)));
      const av = randomValues(6 * 9, seed++);
      check(nonContiguousTensor(av, [6, 9], dtype), nonContiguousTensor(randomValues(9 * 7, seed++), [9, 7], dtype));
      check(slice(rand([12, 5], dtype), 0, 1, 12, 3), slice(rand([5, 10], dtype), 1, 0, 10, 2));
      check(permute(rand([4, 2, 3], dtype), [1, 2, 0]), rand([2, 4, 5], dtype)); // batch dim not outermost in memory
      check(expand(rand([1, 6], dtype), [4, 6]), rand([6, 3], dtype)); // row stride 0
      check(expand(rand([1, 3, 4], dtype), [2, 3, 4]), rand([2, 4, 2], dtype)); // batch stride 0 on A
      check(transpose(rand([2, 4, 3], dtype)), transpose(rand([2, 5, 4], dtype)));
      check(rand([3, 2, 4], dtype), expand(rand([4, 1], dtype), [4, 5])); // column stride 0
    }
  });

  it('folds batch dims into rows when the right operand is shared', () => {
    check(rand([2, 3, 5]), rand([5, 4]));
    check(reshape(rand([24]), [2, 3, 4]), expand(rand([1, 4, 7]), [2, 4, 7]));
    check(slice(rand([4, 3, 5]), 0, 0, 4, 2), rand([5, 2])); // batch stride not mergeable
    check(nonContiguousTensor(randomValues(30, seed++), [2, 3, 5]), transpose(rand([6, 5])));
  });

  it('handles empty dims: K = 0 gives zeros, M, N or batch = 0 give empty results', () => {
    const z = matmul(rand([3, 0]), rand([0, 4]));
    expect(z.shape).toEqual([3, 4]);
    expect(Array.from(z.toFloat64Array())).toEqual(new Array(12).fill(0));
    expect(Array.from(matmul(rand([2, 0], 'bfloat16'), rand([0, 2], 'bfloat16')).toFloat64Array())).toEqual([0, 0, 0, 0]);
    expect(matmul(rand([0, 3]), rand([3, 4])).shape).toEqual([0, 4]);
    expect(matmul(rand([2, 3]), rand([3, 0])).shape).toEqual([2, 0]);
    expect(matmul(rand([0, 2, 3]), rand([3, 4])).shape).toEqual([0, 2, 4]);
    expect(matmul(rand([0]), rand([0])).item()).toBe(0);
  });

  it('computes half types in float32 and rounds the result', () => {
    for (const dtype of ['bfloat16', 'float16'] as const) {
      check(rand([7, 13], dtype), rand([13, 5], dtype));
      check(transpose(rand([9, 6], dtype)), transpose(rand([3, 9], dtype)));
      check(rand([2, 1, 3, 4], dtype), rand([5, 4, 6], dtype));
      check(rand([4], dtype), rand([4], dtype));
    }
    // Exact small integers survive the round trip through bfloat16.
    const out = matmul(tensor([[1, 2], [3, 4]], { dtype: 'bfloat16' }), tensor([[5, 6], [7, 8]], { dtype: 'bfloat16' }));
    expect(out.toArray()).toEqual([[19, 22], [43, 50]]);
  });

  it('sums float64 inputs in float64', () => {
    // 1 + 2^-40 - 1: a float32 accumulator would lose the small term.
    const a = tensor([[1, 2 ** -40, -1]], { dtype: 'float64' });
    const b = tensor([[1], [1], [1]], { dtype: 'float64' });
    expect(matmul(a, b).item()).toBe(2 ** -40);
    expect(matmul(transpose(b), transpose(a)).item()).toBe(2 ** -40);
  });

  it('passes transposed operands to the kernel without copying them', () => {
    const records: OpRecord[] = [];
    const a = rand([5, 7]);
    const bt = transpose(rand([3, 5]));
    const prev = setOpObserver((r) => records.push(r));
    try {
      check(transpose(a), bt);
    } finally {
      setOpObserver(prev);
    }
    const ops = records.map((r) => r.op);
    expect(ops).not.toContain('copy');
    const mm = records.find((r) => r.op === 'matmul')!;
    expect(mm.inputs[0]!.strides).toEqual([1, 7]);
    expect(mm.inputs[1]!.storage).toBe(bt.storage);
    expect(mm.attrs).toEqual({});
  });

  it('records the contract: rank >= 2 inputs with equal batch dims', () => {
    const records: OpRecord[] = [];
    const prev = setOpObserver((r) => records.push(r));
    try {
      matmul(rand([4]), rand([2, 1, 4, 3]));
    } finally {
      setOpObserver(prev);
    }
    const mm = records.find((r) => r.op === 'matmul')!;
    expect(mm.inputs.map((t) => t.shape)).toEqual([[2, 1, 1, 4], [2, 1, 4, 3]]);
    expect(mm.outputs[0]!.shape).toEqual([2, 1, 1, 3]);
  });

  it('reuses its packing buffers across calls', () => {
    matmul(rand([70, 40]), rand([40, 90]));
    const after = matmulScratchElements();
    expect(after.float32).toBeGreaterThan(0);
    matmul(rand([70, 40]), rand([40, 90]));
    matmul(rand([3, 5]), rand([5, 2]));
    expect(matmulScratchElements()).toEqual(after);
  });

  it('rejects bad operands with clear errors', () => {
    expect(() => matmul(rand([2, 3]), rand([4, 2]))).toThrow('matmul: inner dimensions differ: [2, 3] @ [4, 2] (3 vs 4)');
    expect(() => matmul(rand([3]), rand([4]))).toThrow('inner dimensions differ');
    expect(() => matmul(rand([2, 2, 3]), rand([3, 3, 2]))).toThrow('matmul: batch dims of [2, 2, 3] and [3, 3, 2] do not broadcast');
    expect(() => matmul(rand([2, 3]), rand([3, 2], 'float64'))).toThrow('matmul: dtypes differ');
    expect(() => matmul(rand([2, 3], 'int32'), rand([3, 2], 'int32'))).toThrow('matmul: expected floating-point operands');
    expect(() => matmul(tensor(2), rand([2]))).toThrow('matmul: operands need at least one dimension');
    const gone = rand([2, 2]);
    gone.dispose();
    expect(() => matmul(gone, rand([2, 2]))).toThrow('was disposed');
    registerBackend({ ...cpuBackend, name: 'other' });
    expect(() => matmul(rand([2, 2]), rand([2, 2]).to('other'))).toThrow('matmul: operands are on different devices');
  });
});

// poolLinear and repeatLinear (the fused adapter products) against float64 loops.
import { describe, expect, it } from 'vitest';
import {
  cpuBackend, expand, findKernel, memoryStats, permute, poolLinear, registerBackend, registerKernel, repeatLinear, setOpObserver,
  tensor, transpose, type DType, type KernelFn, type OpRecord, type Tensor,
} from '../src/index.js';
import { assertClose, poolLinearReference, randomTensor, repeatLinearReference } from '../src/testing.js';

const FLOAT_DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16'];
const COMPUTE_DTYPES = ['float32', 'float64'] as const;

let seed = 9100;
const rand = (shape: number[], dtype: DType = 'float32', nonContiguous = false): Tensor =>
  randomTensor(shape, { seed: seed++, dtype, nonContiguous, low: -2, high: 2 });

/** Tolerance of a result computed in `compute` and stored as `out`. */
function tolFor(compute: DType, out: DType): { rtol: number; atol: number } {
  if (out === 'bfloat16') return { rtol: 8e-3, atol: 2e-2 };
  if (out === 'float16') return { rtol: 1e-3, atol: 4e-3 };
  return compute === 'float64' && out === 'float64' ? { rtol: 1e-12, atol: 1e-12 } : { rtol: 2e-6, atol: 4e-6 };
}

/** Records the ops announced while `fn` runs. */
function recorded(fn: () => unknown): OpRecord[] {
  const seen: OpRecord[] = [];
  const prev = setOpObserver((r) => seen.push(r));
  try {
    fn();
  } finally {
    setOpObserver(prev);
  }
  return seen;
}

describe('poolLinear', () => {
  it('pools and multiplies for every x dtype, weight dtype and λ (M=5, K=7, N=3)', () => {
    for (const xDtype of FLOAT_DTYPES) {
      for (const d of COMPUTE_DTYPES) {
        for (const lambda of [1, 2, 3, 4]) {
          const x = rand([5, 7 * lambda], xDtype);
          const w = rand([3, 7], d);
          const out = poolLinear(x, w, lambda);
          expect(out.shape).toEqual([5, 3]);
          expect(out.dtype).toBe(d);
          assertClose(out, poolLinearReference(x, w, lambda), tolFor(d, d));
        }
      }
    }
  });

  it('reads batch dims, non-contiguous and strided x and a transposed weight in place', () => {
    for (const d of COMPUTE_DTYPES) {
      for (const lambda of [1, 3]) {
        const cases: [Tensor, Tensor][] = [
          [rand([2, 3, 5 * lambda], 'bfloat16'), rand([4, 5], d)],
          [rand([2, 3, 5 * lambda], d, true), rand([4, 5], d)],
          [permute(rand([3, 5 * lambda, 2], d), [2, 0, 1]), transpose(rand([5, 4], d))],
          [transpose(rand([5 * lambda, 3], 'float16')), transpose(rand([5, 4], d))],
          [expand(rand([1, 5 * lambda], d), [3, 5 * lambda]), rand([4, 5], d)],
          [rand([5 * lambda], d), rand([4, 5], d)],
        ];
        for (const [x, w] of cases) {
          const out = poolLinear(x, w, lambda);
          expect(out.shape).toEqual([...x.shape.slice(0, -1), 4]);
          assertClose(out, poolLinearReference(x, w, lambda), tolFor(d, d));
        }
      }
    }
  });

  it('handles empty rows, an empty output and an empty inner dim', () => {
    expect(poolLinear(rand([0, 6]), rand([3, 3]), 2).shape).toEqual([0, 3]);
    expect(poolLinear(rand([2, 0, 6]), rand([3, 3]), 2).shape).toEqual([2, 0, 3]);
    expect(poolLinear(rand([4, 6]), rand([0, 3]), 2).shape).toEqual([4, 0]);
    const zero = poolLinear(rand([4, 0], 'bfloat16'), rand([3, 0], 'float64'), 2);
    expect(zero.dtype).toBe('float64');
    expect(Array.from(zero.toFloat64Array())).toEqual(new Array(12).fill(0));
  });

  it('records one poolLinear op with inputs [x, weight] and attrs { lambda }, and leaves only its result', () => {
    const x = rand([3, 8], 'bfloat16');
    const w = rand([2, 4]);
    const before = memoryStats().liveTensors;
    const ops = recorded(() => poolLinear(x, w, 2));
    expect(memoryStats().liveTensors - before).toBe(1);
    expect(ops.map((r) => r.op)).toEqual(['poolLinear']);
    expect(ops[0]!.inputs).toEqual([x, w]);
    expect(ops[0]!.attrs).toEqual({ lambda: 2 });
  });

  it('throws naming the op for bad input', () => {
    const w = rand([3, 4]);
    expect(() => poolLinear(tensor([[1, 2]], { dtype: 'int32' }), w, 1)).toThrow('poolLinear: x must have a floating-point dtype, got int32[1, 2] on cpu');
    expect(() => poolLinear(rand([2, 8]), rand([4]), 2)).toThrow('poolLinear: weight must be a 2-D float32 or float64 matrix, got float32[4] on cpu');
    expect(() => poolLinear(rand([2, 8]), rand([3, 4], 'bfloat16'), 2)).toThrow('poolLinear: weight must be a 2-D float32 or float64 matrix, got bfloat16[3, 4] on cpu');
    expect(() => poolLinear(rand([2, 9]), w, 2)).toThrow('poolLinear: last dim 9 of x [2, 9] is not divisible by lambda 2');
    expect(() => poolLinear(rand([2, 6]), w, 2)).toThrow('poolLinear: x [2, 6] pools to 3 features but weight [3, 4] expects 4');
    expect(() => poolLinear(rand([2, 8]), w, 0)).toThrow('poolLinear: lambda must be a positive integer, got 0');
    expect(() => poolLinear(rand([2, 8]), w, 1.5)).toThrow('poolLinear: lambda must be a positive integer, got 1.5');
    expect(() => poolLinear(tensor(1), w, 1)).toThrow('poolLinear: x must have at least one dim');
    registerBackend({ ...cpuBackend, name: 'adapter-other' });
    expect(() => poolLinear(rand([2, 8]).to('adapter-other'), w, 2)).toThrow('poolLinear: all inputs must be on one device');
  });
});

describe('repeatLinear', () => {
  it('computes base + s · repeat(h · Wᵀ) for every base dtype, compute dtype and λ (M=5, R=5, Nr=3)', () => {
    for (const d of COMPUTE_DTYPES) {
      for (const lambda of [1, 2, 3, 4]) {
        const h = rand([5, 5], d);
        const w = rand([3, 5], d);
        const plain = repeatLinear(h, w, { lambda });
        expect(plain.dtype).toBe(d);
        expect(plain.shape).toEqual([5, 3 * lambda]);
        assertClose(plain, repeatLinearReference(h, w, lambda, 1), tolFor(d, d));
        for (const baseDtype of FLOAT_DTYPES) {
          const base = rand([5, 3 * lambda], baseDtype);
          for (const scale of [0.75, 1]) {
            const out = repeatLinear(h, w, { lambda, scale, base });
            expect(out.dtype).toBe(baseDtype);
            assertClose(out, repeatLinearReference(h, w, lambda, scale, base), tolFor(d, baseDtype));
          }
        }
      }
    }
  });

  it('rounds to options.dtype, with or without a base', () => {
    const h = rand([4, 3], 'float64');
    const w = rand([2, 3], 'float64');
    for (const dtype of FLOAT_DTYPES) {
      for (const lambda of [1, 2]) {
        const out = repeatLinear(h, w, { lambda, scale: -1.5, dtype });
        expect(out.dtype).toBe(dtype);
        assertClose(out, repeatLinearReference(h, w, lambda, -1.5), tolFor('float64', dtype));
        const base = rand([4, 2 * lambda], 'bfloat16');
        const withBase = repeatLinear(h, w, { lambda, base, dtype });
        expect(withBase.dtype).toBe(dtype);
        assertClose(withBase, repeatLinearReference(h, w, lambda, 1, base), tolFor('float64', dtype));
      }
    }
  });

  it('reads batch dims, non-contiguous h and base and a transposed weight in place', () => {
    for (const d of COMPUTE_DTYPES) {
      for (const lambda of [1, 3]) {
        const cases: [Tensor, Tensor, Tensor][] = [
          [rand([2, 3, 5], d), rand([4, 5], d), rand([2, 3, 4 * lambda], 'bfloat16')],
          [rand([2, 3, 5], d, true), transpose(rand([5, 4], d)), rand([2, 3, 4 * lambda], d, true)],
          [permute(rand([3, 5, 2], d), [2, 0, 1]), transpose(rand([5, 4], d)), permute(rand([4 * lambda, 3, 2], 'float16'), [2, 1, 0])],
          [rand([5], d), rand([4, 5], d), expand(rand([1], d), [4 * lambda])],
        ];
        for (const [h, w, base] of cases) {
          const out = repeatLinear(h, w, { lambda, scale: 2, base });
          expect(out.shape).toEqual([...h.shape.slice(0, -1), 4 * lambda]);
          assertClose(out, repeatLinearReference(h, w, lambda, 2, base), tolFor(d, base.dtype));
        }
      }
    }
  });

  it('handles empty rows, an empty output and an empty inner dim (then the result is the base)', () => {
    expect(repeatLinear(rand([0, 3]), rand([2, 3]), { lambda: 2 }).shape).toEqual([0, 4]);
    expect(repeatLinear(rand([3, 3]), rand([0, 3]), { lambda: 2 }).shape).toEqual([3, 0]);
    const base = rand([3, 4], 'bfloat16');
    const out = repeatLinear(rand([3, 0]), rand([2, 0]), { lambda: 2, scale: 3, base });
    expect(Array.from(out.toFloat64Array())).toEqual(Array.from(base.toFloat64Array()));
    expect(Array.from(repeatLinear(rand([2, 0], 'float64'), rand([1, 0], 'float64'), { lambda: 3 }).toFloat64Array())).toEqual(new Array(6).fill(0));
  });

  it('records one repeatLinear op with inputs [h, weight(, base)] and attrs { lambda, scale, hasBase }, and leaves only its result', () => {
    const h = rand([3, 4]);
    const w = rand([2, 4]);
    const base = rand([3, 6], 'bfloat16');
    const before = memoryStats().liveTensors;
    const ops = recorded(() => {
      repeatLinear(h, w, { lambda: 3, scale: 0.5, base });
      repeatLinear(h, w, { lambda: 3 });
    });
    expect(memoryStats().liveTensors - before).toBe(2);
    expect(ops.map((r) => r.op)).toEqual(['repeatLinear', 'repeatLinear']);
    expect(ops[0]!.inputs).toEqual([h, w, base]);
    expect(ops[0]!.attrs).toEqual({ lambda: 3, scale: 0.5, hasBase: true });
    expect(ops[1]!.inputs).toEqual([h, w]);
    expect(ops[1]!.attrs).toEqual({ lambda: 3, scale: 1, hasBase: false });
  });

  it('throws naming the op for bad input', () => {
    const h = rand([2, 4]);
    const w = rand([3, 4]);
    expect(() => repeatLinear(rand([2, 4], 'bfloat16'), w, { lambda: 2 })).toThrow('repeatLinear: h must be float32 or float64, got bfloat16[2, 4] on cpu');
    expect(() => repeatLinear(h, rand([3, 4], 'float64'), { lambda: 2 })).toThrow("repeatLinear: weight must have h's dtype float32, got float64[3, 4] on cpu");
    expect(() => repeatLinear(h, rand([12]), { lambda: 2 })).toThrow('repeatLinear: weight must be a 2-D float32 or float64 matrix');
    expect(() => repeatLinear(h, rand([3, 5]), { lambda: 2 })).toThrow('repeatLinear: inner dimensions differ: h [2, 4] and weight [3, 5] (4 vs 5)');
    expect(() => repeatLinear(h, w, { lambda: -1 })).toThrow('repeatLinear: lambda must be a positive integer, got -1');
    expect(() => repeatLinear(h, w, { lambda: 2, scale: Number.NaN })).toThrow('repeatLinear: scale must be a finite number, got NaN');
    expect(() => repeatLinear(h, w, { lambda: 2, base: rand([2, 3]) })).toThrow('repeatLinear: base must have the output\'s shape [2, 6], got float32[2, 3] on cpu');
    expect(() => repeatLinear(h, w, { lambda: 2, base: rand([6]) })).toThrow("repeatLinear: base must have the output's shape [2, 6]");
    expect(() => repeatLinear(h, w, { lambda: 2, base: tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]], { dtype: 'int32' }) }))
      .toThrow('repeatLinear: base must have a floating-point dtype');
    expect(() => repeatLinear(h, w, { lambda: 2, dtype: 'int8' })).toThrow("repeatLinear: dtype must be a floating-point dtype, got 'int8'");
    registerBackend({ ...cpuBackend, name: 'adapter-other' });
    expect(() => repeatLinear(h, w, { lambda: 2, base: rand([2, 6]).to('adapter-other') })).toThrow('repeatLinear: all inputs must be on one device');
  });
});

describe('CPU kernels of the fused products', () => {
  it('run the matmul kernel registered when they are called (a faster CPU matmul is picked up)', () => {
    const original = findKernel('matmul', 'cpu')!;
    let calls = 0;
    const counting: KernelFn = (inputs, outputs, attrs) => {
      calls += 1;
      original(inputs, outputs, attrs);
    };
    registerKernel('matmul', 'cpu', counting);
    try {
      const x = rand([3, 8], 'bfloat16');
      const w = rand([2, 4]);
      assertClose(poolLinear(x, w, 2), poolLinearReference(x, w, 2), tolFor('float32', 'float32'));
      const h = rand([3, 4]);
      assertClose(repeatLinear(h, w, { lambda: 2 }), repeatLinearReference(h, w, 2, 1), tolFor('float32', 'float32'));
    } finally {
      registerKernel('matmul', 'cpu', original);
    }
    expect(calls).toBe(2);
  });
});

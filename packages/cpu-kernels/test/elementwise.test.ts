import { describe, expect, it } from 'vitest';
import { add, div, expand, mul, narrow, sub, tensor } from '@blora/tensor';
import { nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, NATIVE } from './helpers.js';

const OPS = {
  add: { fn: add, ref: (x: number, y: number) => x + y },
  sub: { fn: sub, ref: (x: number, y: number) => x - y },
  mul: { fn: mul, ref: (x: number, y: number) => x * y },
  div: { fn: div, ref: (x: number, y: number) => x / y },
} as const;

/** Float32 results computed in float64 then rounded once: exactly what a float32 op gives. */
function reference(x: Float32Array | number, y: Float32Array | number, n: number, f: (a: number, b: number) => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(f(typeof x === 'number' ? x : x[i]!, typeof y === 'number' ? y : y[i]!));
  return out;
}

const EXACT = { rtol: 0, atol: 0 };
const SIZES = [0, 1, 7, 8, 9, 33, 1000, 70001];

describe.each(Object.entries(OPS))('%s float32', (_name, { fn, ref }) => {
  it('dense operands of every size, exactly as float32 arithmetic', () => {
    for (const n of SIZES) {
      const xv = Float32Array.from(randomValues(n, n + 1, -3, 3));
      const yv = Float32Array.from(randomValues(n, n + 2, 0.5, 3));
      const x = tensor(xv, { shape: [n] });
      const y = tensor(yv, { shape: [n] });
      const expected = reference(xv, yv, n, ref);
      inEveryMode(() => expectClose(fn(x, y), expected, EXACT));
    }
  });

  it('broadcast scalars on either side (numbers, 0-d and expanded size-1 tensors)', () => {
    for (const n of [1, 9, 70001]) {
      const xv = Float32Array.from(randomValues(n, 3 * n, 0.5, 3));
      const x = tensor(xv, { shape: [n] });
      const s = Math.fround(1.7);
      const one = tensor([s], { dtype: 'float32' });
      inEveryMode(() => {
        expectClose(fn(x, s), reference(xv, s, n, ref), EXACT);
        expectClose(fn(s, x), reference(s, xv, n, ref), EXACT);
        expectClose(fn(one, x), reference(s, xv, n, ref), EXACT);
        expectClose(fn(expand(one, [n]), expand(tensor(2.5), [n])), reference(s, 2.5, n, ref), EXACT);
      });
    }
  });

  it('dense views with an offset, 2-D shapes and size-1 dims', () => {
    const xv = randomValues(5 * 12, 7);
    const yv = randomValues(3 * 12, 8, 0.5, 2);
    const x = narrow(tensor(xv, { shape: [5, 1, 12] }), 0, 2, 3);
    const y = tensor(yv, { shape: [3, 1, 12] });
    expect(x.offset).toBe(24);
    const xs = Float32Array.from(xv.subarray(24));
    const ys = Float32Array.from(yv);
    inEveryMode(() => expectClose(fn(x, y), reference(xs, ys, 36, ref), EXACT));
  });

  it('IEEE special values', () => {
    const xv = Float32Array.from([1, -1, 0, Number.NaN, Infinity, -Infinity, 3e38, 1e-45, -0]);
    const yv = Float32Array.from([0, 0, 0, 1, Infinity, 2, 3e38, 2, 0]);
    const x = tensor(xv);
    const y = tensor(yv);
    inEveryMode(() => expectClose(fn(x, y), reference(xv, yv, xv.length, ref), EXACT));
  });

  it('strided operands and other dtypes run the TypeScript kernel', () => {
    const xv = randomValues(6 * 5, 21);
    const yv = randomValues(6 * 5, 22, 0.5, 2);
    const expected = new Float64Array(30);
    for (let i = 0; i < 30; i++) expected[i] = ref(xv[i]!, yv[i]!);
    const strided = nonContiguousTensor(xv, [6, 5]);
    inEveryMode(() => {
      expectClose(fn(strided, tensor(yv, { shape: [6, 5] })), expected, { rtol: 1e-6, atol: 1e-6 });
      expectClose(fn(tensor(xv, { shape: [6, 5], dtype: 'float64' }), tensor(yv, { shape: [6, 5], dtype: 'float64' })), expected, { rtol: 1e-15, atol: 0 });
      expectClose(fn(tensor(xv, { shape: [6, 5], dtype: 'bfloat16' }), tensor(yv, { shape: [6, 5], dtype: 'bfloat16' })), expected, { rtol: 2e-2, atol: 2e-2 });
    });
  });
});

describe('integer dtypes still run the TypeScript kernel', () => {
  it('int32 add and mul wrap like the storage', () => {
    const a = tensor([2147483647, -5, 7], { dtype: 'int32' });
    const b = tensor([1, 3, 6], { dtype: 'int32' });
    inEveryMode(() => {
      expect(Array.from(add(a, b).toTypedArray())).toEqual([-2147483648, -2, 13]);
      expect(Array.from(mul(a, b).toTypedArray())).toEqual([2147483647, -15, 42]);
    });
  });
});

describe.skipIf(!NATIVE)('native binary kernels', () => {
  it('are registered for add, sub, mul and div', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toEqual(expect.arrayContaining(['add', 'sub', 'mul', 'div']));
  });

  it('reject bad arguments with named errors', () => {
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    const x = new Float32Array(4);
    const out = new Float32Array(4);
    expect(() => result.addon.binaryF32(0, x, 0, 1, x, 0, 1, out, 0, 5)).toThrow(/binaryF32: x reaches elements \[0, 4\] outside its storage of 4/);
    expect(() => result.addon.binaryF32(7, x, 0, 1, x, 0, 1, out, 0, 4)).toThrow(/op must be/);
    expect(() => result.addon.binaryF32(0, x, 0, 2, x, 0, 1, out, 0, 2)).toThrow(/steps must be 0 or 1/);
    expect(() => result.addon.binaryF32(0, x, -1, 1, x, 0, 1, out, 0, 2)).toThrow(/xOffset must be >= 0/);
    expect(() => result.addon.binaryF32(0, [1, 2] as unknown as Float32Array, 0, 1, x, 0, 1, out, 0, 2)).toThrow(TypeError);
  });
});

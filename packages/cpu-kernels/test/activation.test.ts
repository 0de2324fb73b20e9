// sigmoid, silu and silu's gradient against float64 references written with plain loops.
import { describe, expect, it } from 'vitest';
import { expand, narrow, sigmoid, silu, siluBackward, siluMul, tensor, type Tensor } from '@blora/tensor';
import { nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, NATIVE } from './helpers.js';

/** 1 / (1 + e^-x) in float64, from e^-|x| so that it never overflows. */
function sigmoidRef(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** x * sigmoid(x), whose limit at -Infinity is -0. */
function siluRef(x: number): number {
  return x === -Infinity ? -0 : x * sigmoidRef(x);
}

const OPS = {
  sigmoid: { fn: sigmoid, ref: sigmoidRef },
  silu: { fn: silu, ref: siluRef },
} as const;

function reference(values: ArrayLike<number>, ref: (x: number) => number): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = ref(values[i]!);
  return out;
}

// A few float32 ulps (the exp approximation, the sum and the quotient each round once), and
// an absolute floor for the far left tail (x < -87), where e^x is a float32 subnormal: silu
// multiplies it by x, so its error there is up to |x| subnormal steps (|x| * 1.4e-45).
const TOL = { rtol: 6e-7, atol: 2e-43 };
const SIZES = [0, 1, 7, 8, 9, 33, 1000, 70001];

describe.each(Object.entries(OPS))('%s float32', (_name, { fn, ref }) => {
  it('dense inputs of every size, across the range where both tails matter', () => {
    for (const n of SIZES) {
      const values = Float32Array.from(randomValues(n, n + 11, -40, 40));
      inEveryMode(() => expectClose(fn(tensor(values, { shape: [n] })), reference(values, ref), TOL));
    }
  });

  it('dense views with an offset and 2-D shapes with size-1 dims', () => {
    const values = Float32Array.from(randomValues(5 * 13, 3, -8, 8));
    const x = narrow(tensor(values, { shape: [5, 1, 13] }), 0, 2, 3);
    expect(x.offset).toBe(26);
    inEveryMode(() => {
      const out = fn(x);
      expect(out.shape).toEqual([3, 1, 13]);
      expectClose(out, reference(values.subarray(26), ref), TOL);
    });
  });

  it('IEEE special values and the tails (NaN, infinities, signed zeros, subnormals, overflow range)', () => {
    const values = Float32Array.from([
      Number.NaN, Infinity, -Infinity, 0, -0, 1e-45, -1e-45, 1e-30, -1e-30, 17, -17, 88.5, -88.5, 100, -100, 103.9, -103.9, 110, -110, 3e38, -3e38,
    ]);
    const expected = reference(values, ref);
    inEveryMode(() => {
      const out = fn(tensor(values));
      const got = out.toFloat64Array();
      expectClose(out, expected, TOL);
      // Signed zeros: silu keeps the sign of x where the product vanishes (-0 at -Infinity and -0).
      for (let i = 0; i < values.length; i++) if (expected[i] === 0) expect(Object.is(got[i], expected[i])).toBe(true);
    });
  });

  it('strided, broadcast and other-dtype inputs run the TypeScript kernel', () => {
    const values = randomValues(6 * 5, 21, -6, 6);
    const expected = reference(values, ref);
    const broadcast = expand(tensor([Math.fround(0.75)], { shape: [1, 1] }), [4, 3]);
    inEveryMode(() => {
      expectClose(fn(nonContiguousTensor(values, [6, 5])), expected, { rtol: 1e-6, atol: 1e-7 });
      expectClose(fn(broadcast), new Float64Array(12).fill(ref(0.75)), TOL);
      expectClose(fn(tensor(values, { shape: [6, 5], dtype: 'float64' })), expected, { rtol: 1e-15, atol: 0 });
      expectClose(fn(tensor(values, { shape: [6, 5], dtype: 'bfloat16' })), expected, { rtol: 2e-2, atol: 2e-2 });
    });
  });

  it('rejects integer inputs with an error naming the op', () => {
    const ints: Tensor = tensor([1, 2], { dtype: 'int32' });
    expect(() => fn(ints)).toThrow(new RegExp(_name));
  });
});

/** dy times silu's derivative at x, with its limits dy and 0 at the infinities. */
function siluGradRef(x: number, dy: number): number {
  if (x === Infinity) return dy;
  if (x === -Infinity) return dy * 0;
  const s = 1 / (1 + Math.exp(-x));
  return dy * s * (1 + x * (1 - s));
}

describe('siluBackward float32', () => {
  // Six native passes each round once in float32: a few ulps of the largest intermediate.
  const GRAD_TOL = { rtol: 3e-6, atol: 1e-6 };

  it('dense inputs of every size, with offsets, the infinities and NaN', () => {
    for (const n of SIZES) {
      const x = Float32Array.from(randomValues(n, n + 5, -20, 20));
      const dy = Float32Array.from(randomValues(n, n + 6, -3, 3));
      if (n >= 8) x.set([Infinity, -Infinity, Number.NaN, 100, -100], 1);
      const expected = Float64Array.from(x, (v, i) => siluGradRef(v, dy[i]!));
      inEveryMode(() => expectClose(siluBackward(tensor(x), tensor(dy)), expected, GRAD_TOL));
    }
    const values = Float32Array.from(randomValues(40, 9, -6, 6));
    const x = narrow(tensor(values, { shape: [2, 20] }), 1, 3, 10);
    const dy = tensor(values.subarray(0, 20), { shape: [2, 10] });
    const xv = x.toFloat64Array();
    const gv = dy.toFloat64Array();
    inEveryMode(() => expectClose(siluBackward(x, dy), Float64Array.from(xv, (v, i) => siluGradRef(v, gv[i]!)), GRAD_TOL));
  });
});

describe('siluMul float32', () => {
  // silu, then the product: two float32 roundings on the native path.
  const MUL_TOL = { rtol: 1e-6, atol: 2e-43 };

  it('dense inputs of every size, with offsets, the infinities and NaN; strided views run the TypeScript kernel', () => {
    for (const n of SIZES) {
      const gate = Float32Array.from(randomValues(n, n + 7, -40, 40));
      const up = Float32Array.from(randomValues(n, n + 8, -3, 3));
      if (n >= 8) gate.set([Infinity, -Infinity, Number.NaN, 100, -100], 1);
      const expected = Float64Array.from(gate, (v, i) => siluRef(v) * up[i]!);
      inEveryMode(() => expectClose(siluMul(tensor(gate), tensor(up)), expected, MUL_TOL));
    }
    const values = Float32Array.from(randomValues(40, 19, -6, 6));
    const gate = narrow(tensor(values, { shape: [2, 20] }), 1, 3, 10);
    const up = tensor(values.subarray(0, 20), { shape: [2, 10] });
    const [gv, uv] = [gate.toFloat64Array(), up.toFloat64Array()];
    const expected = Float64Array.from(gv, (v, i) => siluRef(v) * uv[i]!);
    inEveryMode(() => {
      expectClose(siluMul(gate, up), expected, MUL_TOL);
      expectClose(siluMul(nonContiguousTensor(gv, [2, 10]), up), expected, MUL_TOL);
    });
  });
});

describe.skipIf(!NATIVE)('native activation kernels', () => {
  it('are registered for sigmoid, silu, siluBackward and siluMul', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toEqual(expect.arrayContaining(['sigmoid', 'silu', 'siluBackward', 'siluMul']));
  });

  it('reject bad arguments with named errors', () => {
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    const addon = result.addon;
    const x = new Float32Array(4);
    const out = new Float32Array(4);
    expect(() => addon.activationF32(0, x, 0, out, 0, 4)).not.toThrow();
    expect(() => addon.activationF32(1, x, 1, out, 0, 4)).toThrow(/activationF32: x reaches elements \[1, 4\] outside its storage of 4/);
    expect(() => addon.activationF32(1, x, 0, out, 2, 4)).toThrow(/activationF32: out reaches elements \[2, 5\] outside its storage of 4/);
    expect(() => addon.activationF32(2, x, 0, out, 0, 4)).toThrow(/op must be 0 \(sigmoid\) or 1 \(silu\)/);
    expect(() => addon.activationF32(0, x, -1, out, 0, 2)).toThrow(/xOffset must be >= 0/);
    expect(() => addon.activationF32(0, [1, 2] as unknown as Float32Array, 0, out, 0, 2)).toThrow(TypeError);
  });
});

import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32, cast, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits, tensor,
} from '../src/index.js';
import { seededRandom } from '../src/testing.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float32 whose bit pattern is `bits` (NaN payloads and signs preserved). */
function fromBits(bits: number): number {
  u32[0] = bits;
  return f32[0]!;
}

/** The bit pattern of `value` rounded to float32. */
function toBits(value: number): number {
  f32[0] = value;
  return u32[0]!;
}

/** Round-half-to-even of a non-negative number, written out. */
function roundHalfEven(r: number): number {
  const f = Math.floor(r);
  const d = r - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Reference rounding of a float32 value to a binary format with `mant` fraction bits,
 * minimum normal exponent `emin` and largest finite value `max` (nearest, ties to even).
 */
function roundToFormat(x: number, mant: number, emin: number, max: number): number {
  if (Number.isNaN(x) || !Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  const e = Math.max(Math.floor(Math.log2(a)), emin);
  // log2 may be off by one near powers of two; fix the exponent exactly.
  const exp = 2 ** e > a && e > emin ? e - 1 : 2 ** (e + 1) <= a ? e + 1 : e;
  const quantum = 2 ** (exp - mant);
  const r = roundHalfEven(a / quantum) * quantum;
  // Overflow: values at or beyond max + half a quantum of the top binade round to infinity.
  const out = r > max ? Infinity : r;
  return x < 0 ? -out : out;
}

const F16_MAX = 65504;
const BF16_MAX = fromBits(0x7f7f0000);

describe('bfloat16', () => {
  it('encodes known values', () => {
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(-2)).toBe(0xc000);
    expect(float32ToBfloat16Bits(0)).toBe(0x0000);
    expect(float32ToBfloat16Bits(-0)).toBe(0x8000);
    expect(float32ToBfloat16Bits(Infinity)).toBe(0x7f80);
    expect(float32ToBfloat16Bits(-Infinity)).toBe(0xff80);
    expect(float32ToBfloat16Bits(0.1)).toBe(0x3dcd);
  });

  it('rounds to nearest, ties to even', () => {
    expect(float32ToBfloat16Bits(fromBits(0x3f808000))).toBe(0x3f80); // tie, 0x3f80 is even
    expect(float32ToBfloat16Bits(fromBits(0x3f818000))).toBe(0x3f82); // tie, 0x3f82 is even
    expect(float32ToBfloat16Bits(fromBits(0x3f808001))).toBe(0x3f81); // just above the tie
    expect(float32ToBfloat16Bits(fromBits(0x3f807fff))).toBe(0x3f80); // just below
    expect(float32ToBfloat16Bits(fromBits(0xbf818000))).toBe(0xbf82); // negative tie
    expect(float32ToBfloat16Bits(fromBits(0x3fffffff))).toBe(0x4000); // carry into the exponent
    expect(float32ToBfloat16Bits(fromBits(0x7f7fffff))).toBe(0x7f80); // float32 max rounds to Inf
    expect(float32ToBfloat16Bits(fromBits(0x7f7f7fff))).toBe(0x7f7f); // largest that stays finite
    expect(float32ToBfloat16Bits(fromBits(0x00008000))).toBe(0x0000); // subnormal tie to even 0
    expect(float32ToBfloat16Bits(fromBits(0x00018000))).toBe(0x0002); // subnormal tie to even 2
  });

  it('keeps NaN a (quiet) NaN with its sign, never Inf', () => {
    expect(float32ToBfloat16Bits(NaN) & 0x7fc0).toBe(0x7fc0);
    expect(float32ToBfloat16Bits(fromBits(0xffc00000))).toBe(0xffc0);
    expect(float32ToBfloat16Bits(fromBits(0x7f800001))).toBe(0x7fc0); // signalling, low payload only
    expect(float32ToBfloat16Bits(fromBits(0xff800001))).toBe(0xffc0);
    expect(toBits(bfloat16BitsToFloat32(0xffc0))).toBe(0xffc00000);
    expect(bfloat16BitsToFloat32(0x7fc1)).toBeNaN();
  });

  it('decodes exactly', () => {
    expect(bfloat16BitsToFloat32(0x3f80)).toBe(1);
    expect(bfloat16BitsToFloat32(0xc000)).toBe(-2);
    expect(bfloat16BitsToFloat32(0x7f80)).toBe(Infinity);
    expect(bfloat16BitsToFloat32(0xff80)).toBe(-Infinity);
    expect(Object.is(bfloat16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(bfloat16BitsToFloat32(0x0001)).toBe(2 ** -133);
    expect(bfloat16BitsToFloat32(0x7f7f)).toBe((2 - 2 ** -7) * 2 ** 127);
  });

  it('round-trips all 65536 bit patterns (NaNs stay NaN with their sign)', () => {
    for (let b = 0; b < 0x10000; b++) {
      const back = float32ToBfloat16Bits(bfloat16BitsToFloat32(b));
      const isNaN = (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
      if (isNaN) {
        if ((back & 0x7f80) !== 0x7f80 || (back & 0x7f) === 0 || (back & 0x8000) !== (b & 0x8000)) throw new Error(`NaN ${b.toString(16)} -> ${back.toString(16)}`);
      } else if (back !== b) {
        throw new Error(`bits ${b.toString(16)} -> ${back.toString(16)}`);
      }
    }
  });

  it('matches a written-out round-to-nearest-even on random float32 values of every magnitude', () => {
    const rnd = seededRandom(11);
    for (let i = 0; i < 20000; i++) {
      const x = Math.fround((rnd() - 0.5) * 2 ** Math.floor(rnd() * 280 - 140));
      const got = bfloat16BitsToFloat32(float32ToBfloat16Bits(x));
      const want = roundToFormat(x, 7, -126, BF16_MAX);
      if (!Object.is(got, want) && !(got === 0 && want === 0)) throw new Error(`bfloat16(${x}) = ${got}, expected ${want}`);
    }
  });
});

describe('float16', () => {
  it('encodes known values', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff); // largest finite
    expect(float32ToFloat16Bits(-65504)).toBe(0xfbff);
    expect(float32ToFloat16Bits(0.1)).toBe(0x2e66);
    expect(float32ToFloat16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16Bits(Infinity)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(1e-10)).toBe(0x0000);
    expect(float32ToFloat16Bits(-1e-10)).toBe(0x8000);
  });

  it('overflows to Infinity from 65520 (the tie above the largest finite value)', () => {
    expect(float32ToFloat16Bits(65519.99)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-65520)).toBe(0xfc00);
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(3.4e38)).toBe(0x7c00);
  });

  it('rounds to nearest, ties to even, in normal and subnormal range', () => {
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even
    expect(float32ToFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // half the smallest subnormal: tie -> 0
    expect(float32ToFloat16Bits(-(2 ** -25))).toBe(0x8000);
    expect(float32ToFloat16Bits(2 ** -25 * 1.0001)).toBe(0x0001);
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // 1.5 quanta: tie -> even 2
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the normals
    expect(float32ToFloat16Bits(1 - 2 ** -12)).toBe(0x3c00); // tie above 0x3bff (odd): carries into the exponent
    expect(float32ToFloat16Bits(1 - 2 ** -11)).toBe(0x3bff); // exact
  });

  it('keeps NaN a (quiet) NaN with its sign', () => {
    expect(float32ToFloat16Bits(NaN)).toBe(0x7e00);
    expect(float32ToFloat16Bits(fromBits(0xffc00000))).toBe(0xfe00);
    expect(float32ToFloat16Bits(fromBits(0x7f800001)) & 0x7fff).toBeGreaterThan(0x7c00); // NaN, not Inf
    expect(toBits(float16BitsToFloat32(0xfe00))).toBe(0xffc00000);
    expect(toBits(float16BitsToFloat32(0x7e00))).toBe(0x7fc00000);
  });

  it('decodes exactly', () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16BitsToFloat32(0x0400)).toBe(2 ** -14);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x7c01)).toBeNaN();
  });

  it('round-trips all 65536 bit patterns (NaNs stay NaN with their sign)', () => {
    for (let b = 0; b < 0x10000; b++) {
      const back = float32ToFloat16Bits(float16BitsToFloat32(b));
      const isNaN = (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
      if (isNaN) {
        if ((back & 0x7c00) !== 0x7c00 || (back & 0x3ff) === 0 || (back & 0x8000) !== (b & 0x8000)) throw new Error(`NaN ${b.toString(16)} -> ${back.toString(16)}`);
      } else if (back !== b) {
        throw new Error(`bits ${b.toString(16)} -> ${back.toString(16)}`);
      }
    }
  });

  it('matches a written-out round-to-nearest-even on random float32 values of every magnitude', () => {
    const rnd = seededRandom(12);
    for (let i = 0; i < 20000; i++) {
      const x = Math.fround((rnd() - 0.5) * 2 ** Math.floor(rnd() * 50 - 28));
      const got = float16BitsToFloat32(float32ToFloat16Bits(x));
      const want = roundToFormat(x, 10, -14, F16_MAX);
      if (!Object.is(got, want) && !(got === 0 && want === 0)) throw new Error(`float16(${x}) = ${got}, expected ${want}`);
    }
  });
});

describe('half types in tensors', () => {
  it('tensor() and cast round to nearest even; reads decode', () => {
    const values = [1, -2, 65520, 2 ** -25, 1 + 2 ** -11, fromBits(0x3f818000)];
    const h = tensor(values, { dtype: 'float16' });
    expect(Array.from(h.toTypedArray())).toEqual([0x3c00, 0xc000, 0x7c00, 0x0000, 0x3c00, float32ToFloat16Bits(fromBits(0x3f818000))]);
    expect(Array.from(h.toFloat64Array())).toEqual([1, -2, Infinity, 0, 1, 1.01171875]);
    const b = cast(tensor(values), 'bfloat16');
    expect(Array.from(b.toTypedArray())).toEqual([0x3f80, 0xc000, 0x4780, 0x3300, 0x3f80, 0x3f82]);
    const raw = tensor(new Uint16Array([0x3c00, 0xfe00]), { dtype: 'float16' });
    expect(Array.from(raw.toTypedArray())).toEqual([0x3c00, 0xfe00]);
    expect(cast(raw, 'float32').toArray()).toEqual([1, NaN]);
  });
});

import { describe, expect, it } from 'vitest';
import { seededRandom } from '@blora/tensor/testing';
import { FP4_CODE, FP4_THRESHOLDS, NF4_CODE, NF4_THRESHOLDS, codeTable, fp4CodeOf, nf4CodeOf } from '../src/index.js';

const f32 = Math.fround;

// bitsandbytes' published NF4 values (functional.get_4bit_type('nf4')).
const NF4_EXPECTED = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];
// The decision constants of bitsandbytes' dQuantizeNF4 tree, sorted (float literals).
const NF4_TREE_CONSTANTS = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
  -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
  0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
];
// bitsandbytes' FP4 dequantization constants by code 0..15 (float literals of its kernel).
const FP4_EXPECTED = [
  0, 5.208333333e-3, 0.66666667, 1, 0.33333333, 0.5, 0.16666667, 0.25,
  -0, -5.208333333e-3, -0.66666667, -1, -0.33333333, -0.5, -0.16666667, -0.25,
];
// The decision constants of bitsandbytes' dQuantizeFP4 on |x|.
const FP4_TREE_CONSTANTS = [0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333];
// FP4 codes of the magnitudes in ascending order.
const FP4_ASCENDING = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

function nextUp(x: number): number {
  const b = new Float32Array([x]);
  const u = new Int32Array(b.buffer);
  if (x === 0) return 1.401298464324817e-45;
  u[0]! += x > 0 ? 1 : -1;
  return b[0]!;
}
function nextDown(x: number): number {
  return -nextUp(-x);
}

describe('code tables', () => {
  it('NF4 holds bitsandbytes values exactly', () => {
    expect(Array.from(NF4_CODE)).toEqual(NF4_EXPECTED.map(f32));
    expect(codeTable('nf4')).toBe(NF4_CODE);
  });

  it('FP4 holds bitsandbytes values exactly, sign in bit 3', () => {
    expect(Array.from(FP4_CODE)).toEqual(FP4_EXPECTED.map(f32));
    expect(Object.is(FP4_CODE[8], -0)).toBe(true);
    for (let c = 0; c < 8; c++) expect(FP4_CODE[c | 8]).toBe(-FP4_CODE[c]!);
  });

  it('decision thresholds equal the float32 constants of the bitsandbytes trees', () => {
    expect(Array.from(NF4_THRESHOLDS)).toEqual(NF4_TREE_CONSTANTS.map(f32));
    expect(Array.from(FP4_THRESHOLDS)).toEqual(FP4_TREE_CONSTANTS.map(f32));
  });

  it('rejects an unknown type', () => {
    expect(() => codeTable('nf3' as never)).toThrow(/unknown 4-bit type 'nf3'/);
  });
});

describe('NF4 rounding', () => {
  it('maps the code values, ±1 and 0 to themselves', () => {
    for (let k = 0; k < 16; k++) expect(nf4CodeOf(NF4_CODE[k]!)).toBe(k);
    expect(nf4CodeOf(1)).toBe(15);
    expect(nf4CodeOf(-1)).toBe(0);
    expect(nf4CodeOf(0)).toBe(7);
    expect(nf4CodeOf(-0)).toBe(7);
  });

  it('sends a value exactly on a threshold down, the next float32 up', () => {
    for (let k = 0; k < 15; k++) {
      const t = f32(NF4_TREE_CONSTANTS[k]!);
      expect(nf4CodeOf(t)).toBe(k);
      expect(nf4CodeOf(nextUp(t))).toBe(k + 1);
      expect(nf4CodeOf(nextDown(t))).toBe(k);
    }
  });

  it('sends NaN to code 0 and out-of-range values to the ends', () => {
    expect(nf4CodeOf(NaN)).toBe(0);
    expect(nf4CodeOf(5)).toBe(15);
    expect(nf4CodeOf(-5)).toBe(0);
  });

  it('is the nearest code away from midpoints', () => {
    const rnd = seededRandom(11);
    for (let s = 0; s < 5000; s++) {
      const x = f32(rnd() * 2 - 1);
      let best = 0;
      for (let k = 1; k < 16; k++) if (Math.abs(x - NF4_EXPECTED[k]!) < Math.abs(x - NF4_EXPECTED[best]!)) best = k;
      const nearMid = NF4_EXPECTED.some((v, k) => k < 15 && Math.abs(x - (v + NF4_EXPECTED[k + 1]!) / 2) < 1e-6);
      if (!nearMid) expect(nf4CodeOf(x)).toBe(best);
    }
  });
});

describe('FP4 rounding', () => {
  it('maps the code values and ±1 to themselves', () => {
    for (let c = 0; c < 16; c++) {
      if (c === 8) continue; // -0 is encoded as +0, as in bitsandbytes
      expect(fp4CodeOf(FP4_CODE[c]!)).toBe(c);
    }
    expect(fp4CodeOf(1)).toBe(0b0011);
    expect(fp4CodeOf(-1)).toBe(0b1011);
    expect(fp4CodeOf(0)).toBe(0);
    expect(fp4CodeOf(-0)).toBe(0);
    expect(fp4CodeOf(NaN)).toBe(0);
  });

  it('sends |x| on a threshold down, the next float32 up, for both signs', () => {
    for (let k = 0; k < 7; k++) {
      const t = f32(FP4_TREE_CONSTANTS[k]!);
      expect(fp4CodeOf(t)).toBe(FP4_ASCENDING[k]);
      expect(fp4CodeOf(nextUp(t))).toBe(FP4_ASCENDING[k + 1]);
      expect(fp4CodeOf(-t)).toBe(FP4_ASCENDING[k]! | 8);
      expect(fp4CodeOf(-nextUp(t))).toBe(FP4_ASCENDING[k + 1]! | 8);
    }
  });

  it('follows the truncated constant, not the exact midpoint, between the two', () => {
    // 7/12 is the exact midpoint of 1/2 and 2/3; bitsandbytes compares with 0.583333.
    const between = f32(0.5833332);
    expect(between > f32(0.583333) && between < 7 / 12).toBe(true);
    expect(fp4CodeOf(between)).toBe(0b010); // 2/3, although 1/2 is nearer
  });

  it('is the nearest code away from midpoints', () => {
    const rnd = seededRandom(12);
    const mags = FP4_ASCENDING.map((c) => FP4_EXPECTED[c]!);
    for (let s = 0; s < 5000; s++) {
      const x = f32(rnd() * 2 - 1);
      let best = 0;
      for (let k = 1; k < 8; k++) if (Math.abs(Math.abs(x) - mags[k]!) < Math.abs(Math.abs(x) - mags[best]!)) best = k;
      const nearMid = mags.some((v, k) => k < 7 && Math.abs(Math.abs(x) - (v + mags[k + 1]!) / 2) < 1e-5);
      if (!nearMid) expect(fp4CodeOf(x)).toBe(FP4_ASCENDING[best]! | (x < 0 ? 8 : 0));
    }
  });
});

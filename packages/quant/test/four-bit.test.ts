import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '@blora/tensor';
import {
  FourBitLinear, NF4_CODE, FP4_CODE, doubleQuantize, dynamicMap, fourBitBitsPerParameter, nibbleAt, packNibbles,
  quantizeFourBit, restoreAbsmax, unpackNibbles,
} from '../src/index.js';
import { f32, nextUpFloat32, normalFloat32, refDecodeFourBit, refNibble, studentTValues } from './helpers.js';

const NF4_TREE_CONSTANTS = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984,
  -0.13791173323988914, -0.045525018125772476, 0.03979014977812767, 0.1202552504837513, 0.2035212516784668,
  0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
];

/** The NF4 code bitsandbytes gives a scaled float32 value: how many tree constants it exceeds. */
function refNf4Code(x: number): number {
  return NF4_TREE_CONSTANTS.filter((t) => x > f32(t)).length;
}

function weight(values: ArrayLike<number>, rows: number, cols: number, dtype: 'float32' | 'float64' | 'bfloat16' | 'float16' = 'float32'): Tensor {
  return tensor(Float64Array.from(values), { shape: [rows, cols], dtype });
}

function bytesOf(t: Tensor): Uint8Array {
  return t.toTypedArray() as Uint8Array;
}

describe('packing', () => {
  it('puts the even element in the high nibble', () => {
    expect(Array.from(packNibbles([1, 2, 3, 4]))).toEqual([0x12, 0x34]);
    expect(Array.from(packNibbles([15, 0, 7]))).toEqual([0xf0, 0x70]);
    const packed = Uint8Array.from([0xab, 0xc0]);
    expect([0, 1, 2].map((i) => nibbleAt(packed, i))).toEqual([0xa, 0xb, 0xc]);
    expect(Array.from(unpackNibbles(packed, 3))).toEqual([0xa, 0xb, 0xc]);
    expect(() => unpackNibbles(packed, 5)).toThrow(/2 bytes cannot hold 5 codes \(need 3\)/);
  });
});

describe('NF4 / FP4 quantization', () => {
  it('rounds crafted edge values exactly as bitsandbytes', () => {
    // absmax 2 makes the scaling exact (x * 0.5), so each value lands exactly where intended.
    const values: number[] = [2, -2, 0, -0];
    for (const t of NF4_TREE_CONSTANTS) values.push(2 * f32(t), 2 * nextUpFloat32(f32(t)));
    while (values.length % 64) values.push(0);
    const q = FourBitLinear.quantize(weight(values, 1, values.length), { format: 'nf4', blocksize: 64, doubleQuant: false });
    const packed = bytesOf(q.packed);
    expect(q.absmax!.toFloat64Array()[0]).toBe(2);
    for (let i = 0; i < values.length; i++) expect(refNibble(packed, i)).toBe(refNf4Code(f32(values[i]! * 0.5)));
    expect([0, 1, 2, 3].map((i) => refNibble(packed, i))).toEqual([15, 0, 7, 7]);
    // exact threshold goes down, one float32 above goes up
    expect(refNibble(packed, 4 + 2 * 7)).toBe(7);
    expect(refNibble(packed, 4 + 2 * 7 + 1)).toBe(8);
    q.dispose();
  });

  it('matches a reference quantizer on random and heavy-tailed weights, every block size', () => {
    for (const blocksize of [32, 64, 128, 256, 4096]) {
      for (const [name, values] of [['normal', normalFloat32(4096, blocksize)], ['student-t', studentTValues(4096, blocksize + 1).map(f32)]] as const) {
        const q = FourBitLinear.quantize(weight(values, 64, 64), { format: 'nf4', blocksize, doubleQuant: false });
        const packed = bytesOf(q.packed);
        const absmax = q.absmax!.toFloat64Array();
        for (let b = 0; b < absmax.length; b++) {
          let m = 0;
          for (let i = b * blocksize; i < (b + 1) * blocksize; i++) m = Math.max(m, Math.abs(values[i]!));
          expect(absmax[b], `${name} block ${b}`).toBe(m);
        }
        for (let i = 0; i < values.length; i++) {
          const inv = f32(1 / absmax[Math.floor(i / blocksize)]!);
          expect(refNibble(packed, i)).toBe(refNf4Code(f32(values[i]! * inv)));
        }
        q.dispose();
      }
    }
  });

  it('keeps the round-trip error within half the widest code gap of each block', () => {
    // half the widest gap between neighbouring code values: -1 .. -0.696 for NF4, 2/3 .. 1 for FP4
    const gaps = { nf4: (1 - 0.6961928009986877) / 2, fp4: (1 - 2 / 3) / 2 };
    for (const format of ['nf4', 'fp4'] as const) {
      for (const values of [normalFloat32(3000, 3), studentTValues(3000, 4).map(f32)]) {
        const q = FourBitLinear.quantize(weight(values, 30, 100), { format, blocksize: 64, doubleQuant: false });
        const dense = q.dequantize().toFloat64Array();
        const absmax = q.absmax!.toFloat64Array();
        for (let i = 0; i < values.length; i++) {
          const bound = absmax[Math.floor(i / 64)]! * (gaps[format] + 1e-6);
          expect(Math.abs(dense[i]! - values[i]!)).toBeLessThanOrEqual(bound);
        }
        q.dispose();
      }
    }
  });

  it('dequantizes to table[code] * absmax, identical to a plain decode of its parts', () => {
    for (const format of ['nf4', 'fp4'] as const) {
      const values = studentTValues(15, 9).map(f32); // odd count: last byte half used
      const q = FourBitLinear.quantize(weight(values, 3, 5), { format, blocksize: 32, doubleQuant: false });
      expect(q.packed.numel).toBe(8);
      expect(bytesOf(q.packed)[7]! & 15).toBe(0);
      const table = format === 'nf4' ? NF4_CODE : FP4_CODE;
      const expected = refDecodeFourBit(bytesOf(q.packed), q.absmax!.toFloat64Array(), table, 32, 15);
      expect(Array.from(q.dequantize().toFloat64Array())).toEqual(Array.from(expected));
      q.dispose();
    }
  });

  it('handles a short last block and an all-zero block', () => {
    const values = normalFloat32(150, 21);
    for (let i = 64; i < 128; i++) values[i] = 0;
    const q = FourBitLinear.quantize(weight(values, 3, 50), { blocksize: 64, doubleQuant: false });
    const absmax = q.absmax!.toFloat64Array();
    expect(absmax.length).toBe(3);
    expect(absmax[1]).toBe(0);
    let m = 0;
    for (let i = 128; i < 150; i++) m = Math.max(m, Math.abs(values[i]!));
    expect(absmax[2]).toBe(m);
    const dense = q.dequantize().toFloat64Array();
    for (let i = 64; i < 128; i++) expect(dense[i] === 0).toBe(true); // -0: code 0 is -1 times 0
    // bitsandbytes computes 0 * (1/0) = NaN there, which takes NF4 code 0
    expect(refNibble(bytesOf(q.packed), 64)).toBe(0);
    q.dispose();
  });

  it('accepts bfloat16, float16 and float64 weights and records the source dtype', () => {
    const values = normalFloat32(128, 2);
    const ref = FourBitLinear.quantize(weight(values, 2, 64), { doubleQuant: false });
    for (const dtype of ['bfloat16', 'float16', 'float64'] as const) {
      const w = weight(values, 2, 64, dtype);
      const q = FourBitLinear.quantize(w, { doubleQuant: false });
      expect(q.sourceDType).toBe(dtype === 'float64' ? 'float32' : dtype);
      if (dtype === 'float64') expect(Array.from(bytesOf(q.packed))).toEqual(Array.from(bytesOf(ref.packed)));
      q.dispose();
    }
    ref.dispose();
  });
});

describe('double quantization', () => {
  it('quantizes absmax - mean in nested blocks of 256 and restores it closely', () => {
    const values = studentTValues(64 * 600, 8).map((v) => f32(v * 0.01));
    const q = FourBitLinear.quantize(weight(values, 600, 64), { blocksize: 64 });
    const plain = FourBitLinear.quantize(weight(values, 600, 64), { blocksize: 64, doubleQuant: false });
    const dq = q.doubleQuant!;
    expect(q.absmax).toBeNull();
    expect(dq.nestedBlocksize).toBe(256);
    expect(dq.codes.numel).toBe(600);
    expect(dq.nestedAbsmax.numel).toBe(3);
    // the 4-bit codes do not depend on how the absmax is stored
    expect(Array.from(bytesOf(q.packed))).toEqual(Array.from(bytesOf(plain.packed)));
    const absmax = plain.absmax!.toFloat64Array();
    const mean = f32(absmax.reduce((a, b) => a + b, 0) / absmax.length);
    expect(dq.offset).toBe(mean);
    const nested = dq.nestedAbsmax.toFloat64Array();
    for (let g = 0; g < 3; g++) {
      let m = 0;
      for (let i = g * 256; i < Math.min(600, (g + 1) * 256); i++) m = Math.max(m, Math.abs(f32(absmax[i]! - mean)));
      expect(nested[g]).toBe(m);
    }
    const restored = q.scales().toFloat64Array();
    const map = dynamicMap();
    let widest = 0;
    for (let k = 1; k < 256; k++) widest = Math.max(widest, map[k]! - map[k - 1]!);
    for (let i = 0; i < 600; i++) {
      const bound = nested[Math.floor(i / 256)]! * (widest / 2 + 1e-6);
      expect(Math.abs(restored[i]! - absmax[i]!)).toBeLessThanOrEqual(bound);
    }
    // and the dequantized weight uses the restored absmax
    const expected = refDecodeFourBit(bytesOf(q.packed), restored, NF4_CODE, 64, values.length);
    expect(Array.from(q.dequantize().toFloat64Array())).toEqual(Array.from(expected));
    q.dispose();
    plain.dispose();
  });

  it('restores equal absmax values exactly (zero nested absmax)', () => {
    const dq = doubleQuantize(Float32Array.from([0.5, 0.5, 0.5]));
    expect(dq.offset).toBe(0.5);
    expect(Array.from(dq.nestedAbsmax)).toEqual([0]);
    expect(Array.from(restoreAbsmax(dq))).toEqual([0.5, 0.5, 0.5]);
  });

  it('costs 4.127 bits per parameter at 64/256 and 4.5 without', () => {
    expect(fourBitBitsPerParameter(64, 256)).toBeCloseTo(4.127, 3);
    expect(fourBitBitsPerParameter(64, 256)).toBe(4 + 8 / 64 + 32 / (64 * 256));
    expect(fourBitBitsPerParameter(64, null)).toBe(4.5);
    const q = FourBitLinear.quantize(weight(normalFloat32(256, 1), 4, 64));
    expect(q.bitsPerParameter).toBeCloseTo(4.127, 3);
    q.dispose();
  });
});

describe('low-level quantizeFourBit', () => {
  it('works on flat arrays with a partial last block', () => {
    const { packed, absmax } = quantizeFourBit([0.5, -1, 0.25], 'fp4', 2);
    expect(Array.from(absmax)).toEqual([1, 0.25]);
    expect([0, 1, 2].map((i) => nibbleAt(packed, i))).toEqual([0b101, 0b1011, 0b0011]);
  });
});

describe('errors', () => {
  it('names NaN and Inf positions', () => {
    const values = new Float64Array(30).fill(0.1);
    values[12] = NaN;
    expect(() => FourBitLinear.quantize(weight(values, 3, 10))).toThrow(/NaN at flat index 12 \(row 1, col 2\)/);
    values[12] = 0;
    values[29] = -Infinity;
    expect(() => FourBitLinear.quantize(weight(values, 3, 10))).toThrow(/-Infinity at flat index 29 \(row 2, col 9\)/);
    values[29] = 1e39;
    expect(() => FourBitLinear.quantize(weight(values, 3, 10, 'float64'))).toThrow(/value 1e\+39 at flat index 29 \(row 2, col 9\) does not fit float32/);
  });

  it('rejects bad block sizes, formats, shapes and dtypes', () => {
    const w = weight(normalFloat32(64, 1), 2, 32);
    expect(() => FourBitLinear.quantize(w, { blocksize: 48 })).toThrow(/blocksize must be a power of two from 32 to 4096, got 48/);
    expect(() => FourBitLinear.quantize(w, { blocksize: 8192 })).toThrow(/got 8192/);
    expect(() => FourBitLinear.quantize(w, { format: 'nf5' as never })).toThrow(/unknown 4-bit format 'nf5'/);
    expect(() => FourBitLinear.quantize(tensor([1, 2, 3]))).toThrow(/expected a weight of shape \[out, in\], got \[3\]/);
    expect(() => FourBitLinear.quantize(tensor([[1, 2]], { dtype: 'int32' }))).toThrow(/expected a float weight, got int32\[1, 2\]/);
    expect(() => FourBitLinear.quantize(tensor(new Float32Array(0), { shape: [0, 4] }))).toThrow(/cannot quantize an empty weight \[0, 4\]/);
  });

  it('rejects parts whose lengths do not match the shape', () => {
    const q = FourBitLinear.quantize(weight(normalFloat32(128, 1), 2, 64), { doubleQuant: false });
    const parts = { format: 'nf4' as const, outFeatures: 2, inFeatures: 64, blocksize: 64, packed: q.packed, absmax: q.absmax, doubleQuant: null, table: q.table, sourceDType: 'float32' as const };
    const truncated = tensor(new Uint8Array(63), { dtype: 'uint8' });
    expect(() => new FourBitLinear({ ...parts, packed: truncated })).toThrow(/packed codes must be uint8 with 64 elements for a weight \[2, 64\] \(blocksize 64\), got uint8\[63\]/);
    expect(() => new FourBitLinear({ ...parts, absmax: tensor([1, 2, 3]) })).toThrow(/absmax must be float32 with 2 elements/);
    expect(() => new FourBitLinear({ ...parts, absmax: null })).toThrow(/exactly one of absmax and doubleQuant/);
    expect(() => new FourBitLinear({ ...parts, outFeatures: 3 })).toThrow(/packed codes must be uint8 with 96 elements/);
    q.dispose();
  });
});

import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '@blora/tensor';
import { IntBlockLinear, quantizeLinear, roundHalfEven, roundToFloat16 } from '../src/index.js';
import { f32, normalFloat32, refDecodeInt, studentTValues } from './helpers.js';

function weight(values: ArrayLike<number>, rows: number, cols: number): Tensor {
  return tensor(Float64Array.from(values), { shape: [rows, cols], dtype: 'float32' });
}

/** min and max of each block, computed directly. */
function blockRanges(values: ArrayLike<number>, rows: number, cols: number, br: number, bc: number): { min: number; max: number }[] {
  const out: { min: number; max: number }[] = [];
  for (let R = 0; R < rows / br; R++) {
    for (let C = 0; C < cols / bc; C++) {
      let min = Infinity;
      let max = -Infinity;
      for (let r = R * br; r < (R + 1) * br; r++) {
        for (let c = C * bc; c < (C + 1) * bc; c++) {
          min = Math.min(min, values[r * cols + c]!);
          max = Math.max(max, values[r * cols + c]!);
        }
      }
      out.push({ min, max });
    }
  }
  return out;
}

function decodeOf(q: IntBlockLinear): Float64Array {
  return refDecodeInt(q.codes.toTypedArray() as Uint8Array, q.bits, q.scaleTensor.toFloat64Array(), q.offsetTensor.toFloat64Array(),
    q.outFeatures, q.inFeatures, q.blockRows, q.blockCols);
}

describe('integer block quantization', () => {
  const shapes: [number, number, number, number][] = [[16, 128, 1, 32], [16, 128, 1, 64], [16, 128, 1, 128], [16, 128, 8, 4], [16, 128, 8, 8]];

  for (const format of ['int4', 'int8'] as const) {
    for (const scaleDType of ['float16', 'float32'] as const) {
      it(`${format} with ${scaleDType} scales stays within half a step of min-max parameters`, () => {
        const qmax = format === 'int4' ? 15 : 255;
        for (const [rows, cols, br, bc] of shapes) {
          for (const values of [normalFloat32(rows * cols, rows + bc), studentTValues(rows * cols, bc).map((v) => f32(v * 0.02))]) {
            const q = IntBlockLinear.quantize(weight(values, rows, cols), { format, blockRows: br, blockCols: bc, scaleDType });
            expect(q.scaleTensor.dtype).toBe(scaleDType);
            expect(q.scaleTensor.shape).toEqual([rows / br, cols / bc]);
            const round = scaleDType === 'float16' ? roundToFloat16 : f32;
            const alpha = q.scaleTensor.toFloat64Array();
            const beta = q.offsetTensor.toFloat64Array();
            const ranges = blockRanges(values, rows, cols, br, bc);
            ranges.forEach(({ min, max }, b) => {
              expect(alpha[b]).toBe(round((max - min) / qmax));
              expect(beta[b]).toBe(round(min));
            });
            const dense = q.dequantize().toFloat64Array();
            expect(Array.from(dense)).toEqual(Array.from(decodeOf(q)));
            for (let r = 0; r < rows; r++) {
              for (let c = 0; c < cols; c++) {
                const b = Math.floor(r / br) * (cols / bc) + Math.floor(c / bc);
                const { min, max } = ranges[b]!;
                const trueAlpha = (max - min) / qmax;
                // half a step, plus what rounding the parameters to their dtype can add at the ends
                const bound = alpha[b]! / 2 + qmax * Math.abs(alpha[b]! - trueAlpha) + Math.abs(beta[b]! - min) + 1e-6 * Math.abs(max - min) + 1e-9;
                expect(Math.abs(dense[r * cols + c]! - values[r * cols + c]!)).toBeLessThanOrEqual(bound);
              }
            }
            q.dispose();
          }
        }
      });
    }
  }

  it('rounds ties to even and reproduces values on the grid exactly', () => {
    // block [0 .. 15] has α = 1, β = 0: 2.5 -> 2, 3.5 -> 4, integers exact
    const values = [0, 15, 2.5, 3.5, 7, 8, 9.5, 10.5];
    const q = IntBlockLinear.quantize(weight(values, 1, 8), { format: 'int4', groupSize: 8, scaleDType: 'float32' });
    expect(Array.from(q.dequantize().toFloat64Array())).toEqual([0, 15, 2, 4, 7, 8, 10, 10]);
    expect(roundHalfEven(-2.5)).toBe(-2);
    expect(roundHalfEven(-1.5)).toBe(-2);
    expect(roundHalfEven(0.5)).toBe(0);
    q.dispose();
  });

  it('stores a constant block without dividing by zero', () => {
    const values = [...new Array(32).fill(0.3), ...normalFloat32(32, 3)];
    for (const scaleDType of ['float16', 'float32'] as const) {
      const q = IntBlockLinear.quantize(weight(values, 2, 32), { groupSize: 32, scaleDType });
      expect(q.scaleTensor.toFloat64Array()[0]).toBe(0);
      const dense = q.dequantize().toFloat64Array();
      const stored = scaleDType === 'float16' ? roundToFloat16(0.3) : f32(0.3);
      for (let i = 0; i < 32; i++) expect(dense[i]).toBe(f32(stored));
      expect(dense.every(Number.isFinite)).toBe(true);
      q.dispose();
    }
  });

  it('packs int4 codes two per byte and int8 codes one per byte', () => {
    const values = normalFloat32(64, 4);
    const q4 = IntBlockLinear.quantize(weight(values, 2, 32), { format: 'int4', groupSize: 32 });
    const q8 = IntBlockLinear.quantize(weight(values, 2, 32), { format: 'int8', groupSize: 32 });
    expect(q4.codes.numel).toBe(32);
    expect(q8.codes.numel).toBe(64);
    expect(q4.bitsPerParameter).toBe(5);
    expect(IntBlockLinear.quantize(weight(values, 2, 32), { groupSize: 32, scaleDType: 'float32' }).bitsPerParameter).toBe(6);
    expect(q8.bitsPerParameter).toBe(9);
    q4.dispose();
    q8.dispose();
  });
});

describe('accessors', () => {
  it('returns float32 copies of scales and offsets; 4-bit absmax formats have no offsets', () => {
    const values = normalFloat32(64, 12);
    const q = IntBlockLinear.quantize(weight(values, 2, 32), { groupSize: 16 });
    const scales = q.scales();
    const offsets = q.offsets();
    expect([scales.dtype, offsets.dtype]).toEqual(['float32', 'float32']);
    expect(scales.shape).toEqual([2, 2]);
    expect(Array.from(scales.toFloat64Array())).toEqual(Array.from(q.scaleTensor.toFloat64Array()));
    expect(Array.from(offsets.toFloat64Array())).toEqual(Array.from(q.offsetTensor.toFloat64Array()));
    expect(q.to('cpu')).toBe(q);
    expect(q.describe()).toBe('int4 [2, 32] blocks 1x16, float16 scales on cpu');
    const nf4 = quantizeLinear(weight(values, 2, 32), { format: 'nf4', blocksize: 32, doubleQuant: false });
    expect(nf4.offsets()).toBeNull();
    expect(Array.from(nf4.scales().toFloat64Array()).length).toBe(2);
    q.dispose();
    nf4.dispose();
  });
});

describe('offset updates (QA-BLoRA merge)', () => {
  it('addToOffsets moves each block by its constant, codes and scales untouched', () => {
    const values = normalFloat32(16 * 16, 7);
    const q = IntBlockLinear.quantize(weight(values, 16, 16), { format: 'int4', blockRows: 8, blockCols: 4, scaleDType: 'float32' });
    const codes = Array.from(q.codes.toTypedArray());
    const scales = Array.from(q.scaleTensor.toFloat64Array());
    const before = q.dequantize().toFloat64Array();
    const delta = [0.01, -0.02, 0.5, 0, -1, 0.25, 0.125, 3];
    q.addToOffsets(tensor(delta, { shape: [2, 4] }));
    expect(Array.from(q.codes.toTypedArray())).toEqual(codes);
    expect(Array.from(q.scaleTensor.toFloat64Array())).toEqual(scales);
    const after = q.dequantize().toFloat64Array();
    expect(Array.from(after)).toEqual(Array.from(decodeOf(q)));
    for (let r = 0; r < 16; r++) {
      for (let c = 0; c < 16; c++) {
        const d = delta[Math.floor(r / 8) * 4 + Math.floor(c / 4)]!;
        expect(after[r * 16 + c]! - before[r * 16 + c]!).toBeCloseTo(d, 5);
      }
    }
    q.dispose();
  });

  it('addTileConstants spreads a per-tile value over the blocks inside each tile', () => {
    const values = normalFloat32(16 * 32, 8);
    // λ2 = 8 output rows, λ1 = 4 input columns; groups of 1 x 4 lie inside those tiles
    const q = IntBlockLinear.quantize(weight(values, 16, 32), { format: 'int4', groupSize: 4, scaleDType: 'float32' });
    const before = q.dequantize().toFloat64Array();
    const tiles = Array.from({ length: 2 * 8 }, (_, i) => (i - 7) * 0.01);
    q.addTileConstants(tiles, 8, 4);
    const after = q.dequantize().toFloat64Array();
    for (let r = 0; r < 16; r++) {
      for (let c = 0; c < 32; c++) {
        const d = tiles[Math.floor(r / 8) * 8 + Math.floor(c / 4)]!;
        expect(after[r * 32 + c]! - before[r * 32 + c]!).toBeCloseTo(d, 5);
      }
    }
    q.dispose();
  });

  it('rounds merged float16 offsets and rejects mismatched input', () => {
    const q = IntBlockLinear.quantize(weight(normalFloat32(64, 9), 2, 32), { groupSize: 32 });
    const beta = q.offsetTensor.toFloat64Array();
    q.addToOffsets([1e-3, 0]);
    expect(q.offsetTensor.dtype).toBe('float16');
    expect(q.offsetTensor.toFloat64Array()[0]).toBe(roundToFloat16(beta[0]! + 1e-3));
    expect(() => q.addToOffsets([1, 2, 3])).toThrow(/expected one value per block, 2 \(\[2, 1\] blocks of 1 x 32\), got 3/);
    expect(() => q.addToOffsets([1e6, 0])).toThrow(/block 0 \(row 0, col 0\): offset .* is not a finite float16/);
    expect(() => q.addTileConstants([0, 0], 1, 16)).toThrow(/blocks of 1 x 32 do not lie inside tiles of 1 x 16/);
    expect(() => q.addTileConstants([0], 3, 32)).toThrow(/tiles of 3 x 32 do not tile the weight \[2, 32\]/);
    expect(() => q.addTileConstants([0], 2, 32)).not.toThrow();
    expect(() => q.addTileConstants([0, 0], 2, 32)).toThrow(/expected 1 tile values/);
    q.dispose();
  });
});

describe('errors', () => {
  it('rejects blocks that do not divide the shape', () => {
    const w = weight(normalFloat32(300, 1), 10, 30);
    expect(() => IntBlockLinear.quantize(w, { groupSize: 32 })).toThrow(/weight \[10, 30\] cannot be split into blocks of 1 x 32 .*30 columns are not divisible by 32/);
    expect(() => IntBlockLinear.quantize(w, { blockRows: 8, blockCols: 5 })).toThrow(/10 rows are not divisible by 8/);
    expect(() => IntBlockLinear.quantize(w, { groupSize: 5, blockRows: 2 })).toThrow(/either groupSize or blockRows\/blockCols/);
    expect(() => IntBlockLinear.quantize(w, { blockRows: 2 })).toThrow(/give both blockRows and blockCols/);
    expect(() => IntBlockLinear.quantize(w, { groupSize: 0 })).toThrow(/blockCols must be a positive integer, got 0/);
  });

  it('rejects bad options, overflow and bad parts', () => {
    const w = weight(normalFloat32(64, 1), 2, 32);
    expect(() => IntBlockLinear.quantize(w, { format: 'int3' as never })).toThrow(/unknown integer format 'int3'/);
    expect(() => IntBlockLinear.quantize(w, { scaleDType: 'bfloat16' as never })).toThrow(/scaleDType must be 'float16' or 'float32'/);
    expect(() => quantizeLinear(w, { format: 'q4' } as never)).toThrow(/unknown format 'q4'; expected one of nf4, fp4, int4, int8/);
    const big = weight([...new Array(31).fill(0), 1e6, ...new Array(32).fill(0)], 2, 32);
    expect(() => IntBlockLinear.quantize(big, { groupSize: 32 })).toThrow(/block \(0, 0\) spans \[0, 1000000\], which overflows float16 scales; use float32 scales/);
    const nan = weight([...new Array(40).fill(0), NaN, ...new Array(23).fill(0)], 2, 32);
    expect(() => IntBlockLinear.quantize(nan, { groupSize: 32 })).toThrow(/NaN at flat index 40 \(row 1, col 8\)/);
    const q = IntBlockLinear.quantize(w, { groupSize: 32 });
    const parts = { format: 'int4' as const, outFeatures: 2, inFeatures: 32, blockRows: 1, blockCols: 32, codes: q.codes, scales: q.scaleTensor, offsets: q.offsetTensor };
    expect(() => new IntBlockLinear({ ...parts, codes: tensor(new Uint8Array(31), { dtype: 'uint8' }) })).toThrow(/codes must be uint8 with 32 elements for a weight \[2, 32\], got uint8\[31\]/);
    expect(() => new IntBlockLinear({ ...parts, scales: tensor([1, 2, 3]) })).toThrow(/scales must be float16 or float32 with 2 elements/);
    expect(() => new IntBlockLinear({ ...parts, offsets: tensor([1, 2], { dtype: 'float32' }) })).toThrow(/must share a dtype/);
    q.dispose();
  });
});

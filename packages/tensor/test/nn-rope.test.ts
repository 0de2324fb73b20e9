import { describe, expect, it } from 'vitest';
import { permute, rope, ropeTables, tensor, type DType, type Tensor } from '../src/index.js';
import { assertClose, nonContiguousTensor, randomValues } from '../src/testing.js';
import { buildTensor, dotProduct, lastRecord, LAYOUTS, numericGradient, recordOps, toleranceFor } from './nn-fixtures.js';

/**
 * Float64 reference written the way Hugging Face Llama does it: full-width tables
 * cos/sin [T, Dh] = cat(freqs, freqs), out = x * cos + rotate_half(x) * sin,
 * rotate_half(x) = cat(-x[half:], x[:half]).
 */
function referenceRope(x: ArrayLike<number>, shape: number[], positions: number[], theta: number, inverse = false): Float64Array {
  const [b, h, t, dh] = shape as [number, number, number, number];
  const half = dh / 2;
  const out = new Float64Array(x.length);
  for (let n = 0; n < b * h; n++) {
    for (let p = 0; p < t; p++) {
      const row = (n * t + p) * dh;
      for (let j = 0; j < dh; j++) {
        const freq = 1 / theta ** ((2 * (j % half)) / dh);
        const angle = positions[p]! * freq * (inverse ? -1 : 1);
        const rotated = j < half ? -x[row + j + half]! : x[row + j - half]!;
        out[row + j] = x[row + j]! * Math.cos(angle) + rotated * Math.sin(angle);
      }
    }
  }
  return out;
}

/** x [B, H, T, Dh] built the way attention produces it: a permuted view of [B, T, H, Dh]. */
function headsView(values: ArrayLike<number>, shape: number[], dtype: DType): Tensor {
  const [b, h, t, dh] = shape as [number, number, number, number];
  const bthd = new Float64Array(values.length);
  for (let bi = 0; bi < b; bi++) for (let hi = 0; hi < h; hi++) for (let ti = 0; ti < t; ti++) for (let c = 0; c < dh; c++) {
    bthd[((bi * t + ti) * h + hi) * dh + c] = values[((bi * h + hi) * t + ti) * dh + c]!;
  }
  return permute(tensor(bthd, { shape: [b, t, h, dh], dtype }), [0, 2, 1, 3]);
}

const DTYPES: DType[] = ['float64', 'float32', 'float16', 'bfloat16'];

describe('ropeTables', () => {
  it('holds cos and sin of (p + offset) * theta^(-2i/Dh)', () => {
    const { cos, sin } = ropeTables(7, 12, 500000, { positionOffset: 3 });
    expect(cos.shape).toEqual([7, 6]);
    expect(cos.dtype).toBe('float32');
    const expectedCos: number[] = [];
    const expectedSin: number[] = [];
    for (let p = 0; p < 7; p++) for (let i = 0; i < 6; i++) {
      const angle = (p + 3) / 500000 ** ((2 * i) / 12);
      expectedCos.push(Math.cos(angle));
      expectedSin.push(Math.sin(angle));
    }
    assertClose(cos, expectedCos, { rtol: 1e-6, atol: 1e-7 });
    assertClose(sin, expectedSin, { rtol: 1e-6, atol: 1e-7 });
    const f64 = ropeTables(2, 4, 10000, { dtype: 'float64' });
    expect(f64.cos.dtype).toBe('float64');
    assertClose(f64.sin, [0, 0, Math.sin(1), Math.sin(0.01)], { rtol: 1e-15, atol: 0 });
    expect(ropeTables(0, 4).cos.shape).toEqual([0, 2]);
  });

  it('rejects bad arguments', () => {
    expect(() => ropeTables(4, 5)).toThrow(/ropeTables: head dim Dh must be a non-negative even integer, got 5/);
    expect(() => ropeTables(-1, 4)).toThrow(/ropeTables: T must be a non-negative integer/);
    expect(() => ropeTables(4, 4, 0)).toThrow(/ropeTables: theta must be > 0/);
    expect(() => ropeTables(4, 4, 10000, { positionOffset: 1.5 })).toThrow(/ropeTables: positionOffset must be a non-negative integer/);
    expect(() => ropeTables(4, 4, 10000, { dtype: 'int32' })).toThrow(/ropeTables: dtype must be a floating-point dtype/);
  });
});

describe('rope', () => {
  const shape = [2, 3, 7, 12];
  const count = 2 * 3 * 7 * 12;
  const positions = Array.from({ length: 7 }, (_, p) => p + 5);

  for (const dtype of DTYPES) {
    for (const layout of [...LAYOUTS, 'heads-view'] as const) {
      it(`matches the Hugging Face rotate_half reference (${dtype}, ${layout})`, () => {
        const values = randomValues(count, 31);
        const x = layout === 'heads-view' ? headsView(values, shape, dtype) : buildTensor(values, shape, dtype, layout);
        const tables = ropeTables(7, 12, 10000, { positionOffset: 5, dtype: dtype === 'float64' ? 'float64' : 'float32' });
        const { result: y, records } = recordOps(() => rope(x, tables.cos, tables.sin));
        const record = lastRecord(records, 'rope');
        expect(record.inputs).toEqual([x, tables.cos, tables.sin]);
        expect(record.attrs).toEqual({ inverse: false });
        expect(y.shape).toEqual(shape);
        expect(y.dtype).toBe(dtype);
        assertClose(y, referenceRope(x.toFloat64Array(), shape, positions, 10000), toleranceFor(dtype));
        const back = rope(x, tables.cos, tables.sin, { inverse: true });
        assertClose(back, referenceRope(x.toFloat64Array(), shape, positions, 10000, true), toleranceFor(dtype));
      });
    }
  }

  it('inverse undoes the rotation and is the gradient (finite differences)', () => {
    const small = [1, 2, 3, 4];
    const n = 24;
    const xValues = randomValues(n, 41);
    const dyValues = randomValues(n, 42);
    const pos = [0, 1, 2];
    const tables = ropeTables(3, 4, 100, { dtype: 'float64' });
    const x = tensor(xValues, { shape: small, dtype: 'float64' });
    const roundTrip = rope(rope(x, tables.cos, tables.sin), tables.cos, tables.sin, { inverse: true });
    assertClose(roundTrip, xValues, { rtol: 1e-12, atol: 1e-12 });
    const expected = numericGradient((v) => dotProduct(dyValues, referenceRope(v, small, pos, 100)), xValues);
    const grad = rope(tensor(dyValues, { shape: small, dtype: 'float64' }), tables.cos, tables.sin, { inverse: true });
    assertClose(grad, expected, { rtol: 1e-7, atol: 1e-8 });
  });

  it('reads strided tables', () => {
    const tables = ropeTables(7, 12, 10000, { positionOffset: 5 });
    const cos = nonContiguousTensor(tables.cos.toFloat64Array(), [7, 6]);
    const sin = nonContiguousTensor(tables.sin.toFloat64Array(), [7, 6]);
    const x = tensor(randomValues(count, 32), { shape });
    assertClose(rope(x, cos, sin), referenceRope(x.toFloat64Array(), shape, positions, 10000), toleranceFor('float32'));
  });

  it('accepts float32 tables for half inputs and empty dims', () => {
    const tables = ropeTables(7, 12);
    const x = tensor(randomValues(count, 5), { shape, dtype: 'bfloat16' });
    expect(rope(x, tables.cos, tables.sin).dtype).toBe('bfloat16');
    const empty = rope(tensor(new Float32Array(0), { shape: [0, 3, 7, 12] }), tables.cos, tables.sin);
    expect(empty.shape).toEqual([0, 3, 7, 12]);
    const none = ropeTables(0, 12);
    expect(rope(tensor(new Float32Array(0), { shape: [1, 1, 0, 12] }), none.cos, none.sin).shape).toEqual([1, 1, 0, 12]);
  });

  it('rejects bad inputs with messages naming the problem', () => {
    const tables = ropeTables(7, 12);
    const x = tensor(new Float32Array(count), { shape });
    expect(() => rope(tensor(new Float32Array(84), { shape: [7, 12] }), tables.cos, tables.sin)).toThrow(/rope: x must have shape \[B, H, T, Dh\], got float32\[7, 12\]/);
    expect(() => rope(tensor(new Float32Array(42), { shape: [1, 2, 3, 7] }), tables.cos, tables.sin)).toThrow(/rope: head dim Dh must be even/);
    const short = ropeTables(6, 12);
    expect(() => rope(x, short.cos, short.sin)).toThrow(/rope: cos must have shape \[7, 6\], got float32\[6, 6\]/);
    const f64 = ropeTables(7, 12, 10000, { dtype: 'float64' });
    expect(() => rope(x, f64.cos, f64.sin)).toThrow(/rope: cos and sin must both be float32, got float64\[7, 6\] on cpu and float64\[7, 6\] on cpu/);
    expect(() => rope(tensor(new Float32Array(count), { shape, dtype: 'bfloat16' }), f64.cos, f64.sin)).toThrow(/rope: cos and sin must both be float32 or bfloat16 \(the dtype of x\)/);
    expect(() => rope(x, tables.cos, f64.sin)).toThrow(/rope: cos and sin must both be/);
    expect(() => rope(tensor([1, 2], { dtype: 'int32' }), tables.cos, tables.sin)).toThrow(/rope: x must have a floating-point dtype/);
  });
});

import { describe, expect, it } from 'vitest';
import { expand, rmsNorm, rmsNormBackward, tensor, type DType, type Tensor } from '../src/index.js';
import { assertClose, randomValues } from '../src/testing.js';
import { buildTensor, dotProduct, lastRecord, LAYOUTS, numericGradient, recordOps, toleranceFor } from './nn-fixtures.js';

/** Float64 reference: y = x / sqrt(mean(x^2) + eps) * (offset + w), row by row. */
function referenceRmsNorm(x: ArrayLike<number>, w: ArrayLike<number>, d: number, eps: number, offset: number) {
  const rows = d === 0 ? 0 : x.length / d;
  const y = new Float64Array(x.length);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2;
    rstd[r] = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = x[r * d + i]! * rstd[r]! * (offset + w[i]!);
  }
  return { y, rstd };
}

/** Runs rmsNorm and returns y and the rstd output taken from the op record. */
function runRmsNorm(x: Tensor, w: Tensor, eps: number, offset: number): { y: Tensor; rstd: Tensor } {
  const { result, records } = recordOps(() => rmsNorm(x, w, eps, { offset }));
  const record = lastRecord(records, 'rmsNorm');
  expect(record.inputs).toEqual([x, w]);
  expect(record.outputs[0]).toBe(result);
  expect(record.attrs).toEqual({ eps, offset });
  return { y: result, rstd: record.outputs[1]! };
}

const DTYPES: DType[] = ['float64', 'float32', 'float16', 'bfloat16'];

describe('rmsNorm forward', () => {
  for (const dtype of DTYPES) {
    for (const layout of LAYOUTS) {
      it(`matches the float64 reference (${dtype}, ${layout})`, () => {
        const [rows, d] = [7, 12];
        const x = buildTensor(randomValues(rows * d, 11, -2, 2), [rows, d], dtype, layout);
        const w = buildTensor(randomValues(d, 12), [d], dtype, layout);
        for (const offset of [0, 1]) {
          const { y, rstd } = runRmsNorm(x, w, 1e-5, offset);
          expect(y.shape).toEqual([rows, d]);
          expect(y.dtype).toBe(dtype);
          expect(rstd.shape).toEqual([rows]);
          expect(rstd.dtype).toBe(dtype === 'float64' ? 'float64' : 'float32');
          const ref = referenceRmsNorm(x.toFloat64Array(), w.toFloat64Array(), d, 1e-5, offset);
          assertClose(y, ref.y, toleranceFor(dtype));
          assertClose(rstd, ref.rstd, toleranceFor(dtype === 'float64' ? 'float64' : 'float32'));
        }
      });
    }
  }

  it('handles rank 1 and rank 3 inputs, broadcast views and size-1 dims', () => {
    const w = tensor(randomValues(5, 3), { dtype: 'float64' });
    const x1 = tensor(randomValues(5, 4), { dtype: 'float64' });
    const { y: y1, rstd: r1 } = runRmsNorm(x1, w, 1e-6, 0);
    expect(r1.shape).toEqual([]);
    assertClose(y1, referenceRmsNorm(x1.toFloat64Array(), w.toFloat64Array(), 5, 1e-6, 0).y, toleranceFor('float64'));
    // Every row of an expanded view is the same storage row.
    const base = tensor(randomValues(5, 5), { shape: [1, 1, 5], dtype: 'float64' });
    const x3 = expand(base, [2, 3, 5]);
    const { y: y3 } = runRmsNorm(x3, w, 1e-6, 0);
    expect(y3.shape).toEqual([2, 3, 5]);
    assertClose(y3, referenceRmsNorm(x3.toFloat64Array(), w.toFloat64Array(), 5, 1e-6, 0).y, toleranceFor('float64'));
    const one = tensor([[3], [-0.5]], { dtype: 'float64' });
    const { y: yOne } = runRmsNorm(one, tensor([2], { dtype: 'float64' }), 0, 0);
    assertClose(yOne, [2, -2], toleranceFor('float64'));
  });

  it('handles empty inputs', () => {
    const noRows = runRmsNorm(tensor(new Float32Array(0), { shape: [0, 4] }), tensor([1, 1, 1, 1]), 1e-6, 0);
    expect(noRows.y.shape).toEqual([0, 4]);
    expect(noRows.rstd.shape).toEqual([0]);
    const noCols = runRmsNorm(tensor(new Float32Array(0), { shape: [3, 0] }), tensor(new Float32Array(0)), 0.25, 0);
    expect(noCols.y.shape).toEqual([3, 0]);
    assertClose(noCols.rstd, [2, 2, 2]);
  });

  it('rejects bad inputs with messages naming the problem', () => {
    const x = tensor(randomValues(12, 1), { shape: [3, 4] });
    expect(() => rmsNorm(x, tensor([1, 1, 1]))).toThrow(/rmsNorm: weight must have shape \[4\].*float32\[3\]/);
    expect(() => rmsNorm(x, tensor([1, 1, 1, 1], { dtype: 'float64' }))).toThrow(/rmsNorm: weight must be float32, got float64\[4\]/);
    expect(() => rmsNorm(tensor([1, 2], { dtype: 'int32' }), tensor([1, 1], { dtype: 'int32' }))).toThrow(/rmsNorm: x must have a floating-point dtype, got int32\[2\]/);
    expect(() => rmsNorm(tensor(1), tensor([1]))).toThrow(/rmsNorm: x must have at least one dim/);
    expect(() => rmsNorm(x, tensor([1, 1, 1, 1]), -1)).toThrow(/rmsNorm: eps must be >= 0, got -1/);
    expect(() => rmsNorm(x, tensor([1, 1, 1, 1]), 1e-6, { offset: Number.NaN })).toThrow(/rmsNorm: offset must be a finite number/);
    expect(() => rmsNormBackward(x, x, tensor([1, 1, 1, 1]), tensor([1, 1]))).toThrow(/rmsNormBackward: rstd must have shape \[3\], got float32\[2\]/);
    expect(() => rmsNormBackward(tensor(new Float32Array(4), { shape: [4, 1] }), x, tensor([1, 1, 1, 1]), tensor([1, 1, 1]))).toThrow(/rmsNormBackward: dy must have shape \[3, 4\]/);
  });
});

describe('rmsNorm backward', () => {
  const [rows, d, eps] = [5, 9, 1e-5];
  const xValues = randomValues(rows * d, 21, -1.5, 1.5);
  const wValues = randomValues(d, 22, 0.5, 1.5);
  const dyValues = randomValues(rows * d, 23);

  for (const offset of [0, 1]) {
    // Finite differences of L = sum(dy * y) in float64 give the expected gradients.
    const loss = (x: ArrayLike<number>, w: ArrayLike<number>) => dotProduct(dyValues, referenceRmsNorm(x, w, d, eps, offset).y);
    const expectedDx = numericGradient((x) => loss(x, wValues), xValues);
    const expectedDw = numericGradient((w) => loss(xValues, w), wValues);

    for (const dtype of ['float64', 'float32'] as const) {
      for (const layout of LAYOUTS) {
        it(`matches finite differences (${dtype}, ${layout}, offset ${offset})`, () => {
          const x = buildTensor(xValues, [rows, d], dtype, layout);
          const w = buildTensor(wValues, [d], dtype, layout);
          const dy = buildTensor(dyValues, [rows, d], dtype, layout);
          const { rstd } = runRmsNorm(x, w, eps, offset);
          const { result: [dx, dw], records } = recordOps(() => rmsNormBackward(dy, x, w, rstd, { offset }));
          const record = lastRecord(records, 'rmsNormBackward');
          expect(record.inputs).toEqual([dy, x, w, rstd]);
          expect(record.attrs).toEqual({ offset, weightGrad: true });
          expect(dx.shape).toEqual([rows, d]);
          expect(dw.shape).toEqual([d]);
          const tol = dtype === 'float64' ? { rtol: 1e-6, atol: 1e-7 } : { rtol: 1e-4, atol: 1e-4 };
          assertClose(dx, expectedDx, tol);
          assertClose(dw, expectedDw, tol);
        });
      }
    }
  }

  it('skips the weight gradient when asked: the same dx, dweight zeros', () => {
    for (const dtype of ['float64', 'float32', 'bfloat16'] as const) {
      const x = tensor(xValues, { shape: [rows, d], dtype });
      const w = tensor(wValues, { dtype });
      const dy = tensor(dyValues, { shape: [rows, d], dtype });
      const { rstd } = runRmsNorm(x, w, eps, 1);
      const [dx] = rmsNormBackward(dy, x, w, rstd, { offset: 1 });
      const [dxFrozen, dwFrozen] = rmsNormBackward(dy, x, w, rstd, { offset: 1, weightGrad: false });
      expect(dxFrozen.toFloat64Array()).toEqual(dx.toFloat64Array());
      expect(Array.from(dwFrozen.toFloat64Array())).toEqual(new Array(d).fill(0));
    }
    const x = tensor(xValues, { shape: [rows, d] });
    expect(() => rmsNormBackward(x, x, tensor(wValues), tensor(new Float32Array(rows)), { weightGrad: 'no' as unknown as boolean }))
      .toThrow(/rmsNormBackward: weightGrad must be true or false, got no/);
  });

  it('works in bfloat16 within its precision', () => {
    const x = tensor(xValues, { shape: [rows, d], dtype: 'bfloat16' });
    const w = tensor(wValues, { dtype: 'bfloat16' });
    const dy = tensor(dyValues, { shape: [rows, d], dtype: 'bfloat16' });
    const { rstd } = runRmsNorm(x, w, eps, 0);
    const [dx, dw] = rmsNormBackward(dy, x, w, rstd);
    const [xr, wr, dyr] = [x.toFloat64Array(), w.toFloat64Array(), dy.toFloat64Array()];
    const loss = (xs: ArrayLike<number>, ws: ArrayLike<number>) => dotProduct(dyr, referenceRmsNorm(xs, ws, d, eps, 0).y);
    assertClose(dx, numericGradient((v) => loss(v, wr), xr), toleranceFor('bfloat16'));
    assertClose(dw, numericGradient((v) => loss(xr, v), wr), toleranceFor('bfloat16'));
  });
});

import { describe, expect, it } from 'vitest';
import { crossEntropy, crossEntropyBackward, expand, scalar, tensor, type CrossEntropyReduction, type DType, type Tensor } from '../src/index.js';
import { assertClose, nonContiguousTensor, randomValues } from '../src/testing.js';
import { buildTensor, lastRecord, LAYOUTS, numericGradient, recordOps, toleranceFor } from './nn-fixtures.js';

/** Float64 reference: per-row log(sum(exp(x))) - x[target], reduced over counted rows. */
function referenceCrossEntropy(logits: ArrayLike<number>, targets: number[], v: number, ignoreIndex: number, reduction: CrossEntropyReduction) {
  const lse = new Float64Array(targets.length);
  let total = 0;
  let counted = 0;
  for (let n = 0; n < targets.length; n++) {
    let max = -Infinity;
    for (let j = 0; j < v; j++) max = Math.max(max, logits[n * v + j]!);
    let sum = 0;
    for (let j = 0; j < v; j++) sum += Math.exp(logits[n * v + j]! - max);
    lse[n] = max + Math.log(sum);
    if (targets[n] === ignoreIndex) continue;
    total += lse[n]! - logits[n * v + targets[n]!]!;
    counted++;
  }
  const loss = reduction === 'sum' ? total : counted === 0 ? 0 : total / counted;
  return { loss, lse };
}

function runCrossEntropy(logits: Tensor, targets: Tensor, ignoreIndex: number, reduction: CrossEntropyReduction) {
  const { result, records } = recordOps(() => crossEntropy(logits, targets, { ignoreIndex, reduction }));
  const record = lastRecord(records, 'crossEntropy');
  expect(record.inputs).toEqual([logits, targets]);
  expect(record.outputs[0]).toBe(result);
  expect(record.attrs).toEqual({ ignoreIndex, reduction });
  return { loss: result, lse: record.outputs[1]! };
}

const [N, V] = [7, 13];
const targetList = [3, -100, 12, 0, 5, -100, 7];

describe('crossEntropy forward', () => {
  for (const dtype of ['float64', 'float32', 'float16', 'bfloat16'] as DType[]) {
    for (const layout of LAYOUTS) {
      it(`matches the float64 reference (${dtype}, ${layout})`, () => {
        const logits = buildTensor(randomValues(N * V, 51, -3, 3), [N, V], dtype, layout);
        const targets = layout === 'strided' ? nonContiguousTensor(targetList, [N], 'int32') : tensor(targetList, { dtype: 'int32' });
        for (const reduction of ['mean', 'sum'] as const) {
          const { loss, lse } = runCrossEntropy(logits, targets, -100, reduction);
          const stats = dtype === 'float64' ? 'float64' : 'float32';
          expect(loss.shape).toEqual([]);
          expect(loss.dtype).toBe(stats);
          expect(lse.shape).toEqual([N]);
          const ref = referenceCrossEntropy(logits.toFloat64Array(), targetList, V, -100, reduction);
          assertClose(loss, [ref.loss], toleranceFor(stats));
          assertClose(lse, ref.lse, toleranceFor(stats));
        }
      });
    }
  }

  it('is stable for huge logits (no overflow of exp)', () => {
    const base = randomValues(N * V, 52, -3, 3);
    const shifted = base.map((x) => x + 1000);
    const targets = tensor([1, 2, 3, 4, 5, 6, 7], { dtype: 'int32' });
    const { loss, lse } = runCrossEntropy(tensor(shifted, { shape: [N, V] }), targets, -100, 'mean');
    const ref = referenceCrossEntropy(base, [1, 2, 3, 4, 5, 6, 7], V, -100, 'mean');
    expect(Number.isFinite(loss.item())).toBe(true);
    assertClose(loss, [ref.loss], { rtol: 1e-3, atol: 1e-3 });
    assertClose(lse, ref.lse.map((x) => x + 1000), { rtol: 1e-6, atol: 0 });
  });

  it('reads logits broadcast over the rows (a stride-0 view)', () => {
    const row = randomValues(V, 55);
    const logits = expand(tensor(row, { shape: [1, V], dtype: 'float64' }), [N, V]);
    const targets = [0, 1, 2, 3, 4, 5, 12];
    const { loss, lse } = runCrossEntropy(logits, tensor(targets, { dtype: 'int32' }), -100, 'sum');
    const ref = referenceCrossEntropy(logits.toFloat64Array(), targets, V, -100, 'sum');
    assertClose(loss, [ref.loss], toleranceFor('float64'));
    assertClose(lse, ref.lse, toleranceFor('float64'));
  });

  it('uses a custom ignoreIndex inside the vocabulary, and gives 0 when nothing is counted', () => {
    const values = randomValues(N * V, 53);
    const logits = tensor(values, { shape: [N, V], dtype: 'float64' });
    const targets = [0, 4, 0, 9, 0, 0, 2];
    const { loss } = runCrossEntropy(logits, tensor(targets, { dtype: 'int32' }), 0, 'mean');
    assertClose(loss, [referenceCrossEntropy(values, targets, V, 0, 'mean').loss], toleranceFor('float64'));
    const all = tensor(new Int32Array(N).fill(-100), { dtype: 'int32' });
    expect(runCrossEntropy(logits, all, -100, 'mean').loss.item()).toBe(0);
    expect(runCrossEntropy(logits, all, -100, 'sum').loss.item()).toBe(0);
    const empty = runCrossEntropy(tensor(new Float32Array(0), { shape: [0, V] }), tensor(new Int32Array(0), { dtype: 'int32' }), -100, 'mean');
    expect(empty.loss.item()).toBe(0);
    expect(empty.lse.shape).toEqual([0]);
  });

  it('rejects bad inputs with messages naming the problem', () => {
    const logits = tensor(randomValues(N * V, 54), { shape: [N, V] });
    const bad = tensor([3, -100, 12, 13, 5, -100, 7], { dtype: 'int32' });
    expect(() => crossEntropy(logits, bad)).toThrow(/crossEntropy: target 13 at position 3 is out of range \[0, 13\) and is not ignoreIndex \(-100\)/);
    expect(() => crossEntropy(logits, tensor([0, 0, 0, 0, 0, 0, -1], { dtype: 'int32' }))).toThrow(/target -1 at position 6 is out of range/);
    expect(() => crossEntropy(logits, tensor(targetList, { dtype: 'float32' }))).toThrow(/crossEntropy: targets must be int32, got float32\[7\]/);
    expect(() => crossEntropy(logits, tensor([1, 2], { dtype: 'int32' }))).toThrow(/crossEntropy: targets must have shape \[7\], got int32\[2\]/);
    expect(() => crossEntropy(tensor([1, 2, 3]), tensor([1], { dtype: 'int32' }))).toThrow(/crossEntropy: logits must have shape \[N, V\], got float32\[3\]/);
    expect(() => crossEntropy(logits, tensor(targetList, { dtype: 'int32' }), { reduction: 'none' as CrossEntropyReduction })).toThrow(/reduction must be 'mean' or 'sum', got none/);
    expect(() => crossEntropy(logits, tensor(targetList, { dtype: 'int32' }), { ignoreIndex: 0.5 })).toThrow(/ignoreIndex must be an integer/);
    const targets = tensor(targetList, { dtype: 'int32' });
    const { lse } = runCrossEntropy(logits, targets, -100, 'mean');
    expect(() => crossEntropyBackward(tensor([1]), logits, targets, lse)).toThrow(/crossEntropyBackward: dloss must have shape \[\], got float32\[1\]/);
    expect(() => crossEntropyBackward(scalar(1), logits, bad, lse)).toThrow(/crossEntropyBackward: target 13 at position 3 is out of range/);
  });
});

describe('crossEntropy backward', () => {
  const values = randomValues(N * V, 61, -2, 2);
  for (const reduction of ['mean', 'sum'] as const) {
    const dloss = 0.7;
    const expected = numericGradient((x) => dloss * referenceCrossEntropy(x, targetList, V, -100, reduction).loss, values);
    for (const dtype of ['float64', 'float32'] as const) {
      for (const layout of LAYOUTS) {
        it(`matches finite differences (${dtype}, ${layout}, ${reduction})`, () => {
          const logits = buildTensor(values, [N, V], dtype, layout);
          const targets = tensor(targetList, { dtype: 'int32' });
          const { lse } = runCrossEntropy(logits, targets, -100, reduction);
          const dl = scalar(dloss, { dtype });
          const { result: grad, records } = recordOps(() => crossEntropyBackward(dl, logits, targets, lse, { reduction }));
          const record = lastRecord(records, 'crossEntropyBackward');
          expect(record.inputs).toEqual([dl, logits, targets, lse]);
          expect(record.attrs).toEqual({ ignoreIndex: -100, reduction });
          expect(grad.shape).toEqual([N, V]);
          expect(grad.dtype).toBe(dtype);
          assertClose(grad, expected, dtype === 'float64' ? { rtol: 1e-6, atol: 1e-8 } : { rtol: 1e-4, atol: 1e-6 });
        });
      }
    }
  }

  it('gives a zero gradient when no token is counted, and for bfloat16 logits', () => {
    const logits = tensor(values, { shape: [N, V] });
    const none = tensor(new Int32Array(N).fill(-100), { dtype: 'int32' });
    const { lse } = runCrossEntropy(logits, none, -100, 'mean');
    const grad = crossEntropyBackward(scalar(1), logits, none, lse);
    expect(Array.from(grad.toFloat64Array()).every((g) => g === 0)).toBe(true);
    const half = tensor(values, { shape: [N, V], dtype: 'bfloat16' });
    const targets = tensor(targetList, { dtype: 'int32' });
    const halfLse = runCrossEntropy(half, targets, -100, 'mean').lse;
    const halfGrad = crossEntropyBackward(scalar(1), half, targets, halfLse);
    expect(halfGrad.dtype).toBe('bfloat16');
    const rounded = half.toFloat64Array();
    assertClose(halfGrad, numericGradient((x) => referenceCrossEntropy(x, targetList, V, -100, 'mean').loss, rounded), toleranceFor('bfloat16'));
  });
});

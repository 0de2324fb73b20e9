// Rules run in the dtype of the tensors they differentiate: float32, float16 and bfloat16
// gradients agree with float64 ones to the precision of the type.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import { cast, type DType, type Tensor } from '@blora/tensor';
import { assertClose, randomValues } from '@blora/tensor/testing';
import { dropout } from '../src/index.js';

/** A composite exercising views, broadcasting, reductions, softmax, matmul, indexing and pooling. */
function composite(x: Tensor, w: Tensor, b: Tensor): Tensor {
  const h = T.add(T.matmul(x, T.transpose(w)), b);
  const act = T.mul(T.silu(h), T.gelu(h, 'tanh'));
  const pooled = T.repeatInterleave(T.avgPool1d(act, 2), 2);
  const probs = T.softmax(T.mul(pooled, 0.5), -1);
  const picked = T.indexSelect(probs, 0, T.tensor([2, 0, 2], { dtype: 'int32' }));
  return T.add(T.sum(T.square(picked)), T.mean(T.max(h, 1)));
}

function gradsIn(dtype: DType): Float64Array[] {
  const make = (shape: number[], seed: number) => {
    const t = T.tensor(randomValues(shape.reduce((a, d) => a * d, 1), seed), { shape, dtype });
    t.requiresGrad = true;
    return t;
  };
  const x = make([3, 5], 1);
  const w = make([4, 5], 2);
  const b = make([4], 3);
  composite(x, w, b).backward();
  for (const t of [x, w, b]) expect(t.grad!.dtype).toBe(dtype);
  return [x, w, b].map((t) => t.grad!.toFloat64Array());
}

describe('gradients in every float dtype', () => {
  const reference = gradsIn('float64');
  const tolerances: [DType, number][] = [['float32', 1e-5], ['float16', 2e-2], ['bfloat16', 8e-2]];
  for (const [dtype, tol] of tolerances) {
    it(`${dtype} matches float64`, () => {
      gradsIn(dtype).forEach((g, i) => assertClose(g, reference[i]!, { rtol: tol, atol: tol }));
    });
  }

  it('dropout keeps the dtype of its input', () => {
    const x = cast(T.ones([8]), 'bfloat16');
    x.requiresGrad = true;
    T.sum(dropout(x, 0.5)).backward();
    expect(x.grad!.dtype).toBe('bfloat16');
    for (const v of x.grad!.toFloat64Array()) expect([0, 2]).toContain(v);
  });
});

import { describe, expect, it } from 'vitest';
import {
  cpuBackend, embedding, expand, gather, indexAdd, indexSelect, permute, registerBackend, scatterAdd, slice, tensor,
  transpose, type DType, type Tensor,
} from '../src/index.js';
import { assertClose, nonContiguousTensor, randomTensor, randomValues, seededRandom } from '../src/testing.js';

// Plain-loop index arithmetic for the references.
function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}
function unravel(flat: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
  }
  return c;
}
function ravel(coords: readonly number[], shape: readonly number[]): number {
  const s = stridesOf(shape);
  return coords.reduce((p, c, d) => p + c * s[d]!, 0);
}
const count = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/** Seeded int32 indices in [0, size), as a tensor (optionally a non-contiguous view). */
function indices(shape: number[], size: number, seed: number, nonContiguous = false): Tensor {
  const rnd = seededRandom(seed);
  const values = Array.from({ length: count(shape) }, () => Math.floor(rnd() * size));
  return nonContiguous ? nonContiguousTensor(values, shape, 'int32') : tensor(Int32Array.from(values), { shape, dtype: 'int32' });
}

function refIndexSelect(x: Tensor, axis: number, index: Tensor): Float64Array {
  const xv = x.toFloat64Array();
  const iv = index.toFloat64Array();
  const shape = [...x.shape];
  shape[axis] = iv.length;
  const out = new Float64Array(count(shape));
  for (let p = 0; p < out.length; p++) {
    const c = unravel(p, shape);
    c[axis] = iv[c[axis]!]!;
    out[p] = xv[ravel(c, x.shape)]!;
  }
  return out;
}

function refGather(x: Tensor, axis: number, index: Tensor): Float64Array {
  const xv = x.toFloat64Array();
  const iv = index.toFloat64Array();
  const out = new Float64Array(iv.length);
  for (let p = 0; p < out.length; p++) {
    const c = unravel(p, index.shape);
    c[axis] = iv[p]!;
    out[p] = xv[ravel(c, x.shape)]!;
  }
  return out;
}

function refScatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Float64Array {
  const out = x.toFloat64Array();
  const iv = index.toFloat64Array();
  const sv = src.toFloat64Array();
  for (let p = 0; p < iv.length; p++) {
    const c = unravel(p, index.shape);
    const from = ravel(c, src.shape);
    c[axis] = iv[p]!;
    out[ravel(c, x.shape)] += sv[from]!;
  }
  return out;
}

function refIndexAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Float64Array {
  const out = x.toFloat64Array();
  const iv = index.toFloat64Array();
  const sv = src.toFloat64Array();
  for (let p = 0; p < sv.length; p++) {
    const c = unravel(p, src.shape);
    c[axis] = iv[c[axis]!]!;
    out[ravel(c, x.shape)] += sv[p]!;
  }
  return out;
}

let seed = 100;
const rand = (shape: number[], dtype: DType = 'float32', nonContiguous = false) =>
  randomTensor(shape, { seed: seed++, dtype, nonContiguous, low: -4, high: 4 });

const DTYPES: DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int8', 'uint8'];

describe('indexSelect', () => {
  it('selects along every axis, with repeats, for every dtype and layout', () => {
    for (const dtype of DTYPES) {
      const sources = [rand([3, 5, 4], dtype), rand([3, 5, 4], dtype, true), permute(rand([4, 3, 5], dtype), [1, 2, 0])];
      for (const x of sources) {
        for (const axis of [0, 1, 2, -1, -2]) {
          const ax = axis < 0 ? axis + 3 : axis;
          const index = indices([7], x.shape[ax]!, seed++);
          const out = indexSelect(x, axis, index);
          const shape = [...x.shape];
          shape[ax] = 7;
          expect(out.shape).toEqual(shape);
          expect(out.dtype).toBe(dtype);
          expect(Array.from(out.toFloat64Array())).toEqual(Array.from(refIndexSelect(x, ax, index)));
        }
      }
    }
  });

  it('accepts non-contiguous and empty indices, broadcast sources and empty dims', () => {
    const x = rand([6, 3]);
    const idx = indices([4], 6, seed++, true);
    expect(Array.from(indexSelect(x, 0, idx).toFloat64Array())).toEqual(Array.from(refIndexSelect(x, 0, idx)));
    const none = tensor(new Int32Array(0), { dtype: 'int32' });
    expect(indexSelect(x, 0, none).shape).toEqual([0, 3]);
    const wide = expand(rand([1, 5]), [4, 5]);
    const i2 = indices([3], 4, seed++);
    expect(Array.from(indexSelect(wide, 0, i2).toFloat64Array())).toEqual(Array.from(refIndexSelect(wide, 0, i2)));
    expect(indexSelect(rand([0, 3]), 1, tensor([2, 0], { dtype: 'int32' })).shape).toEqual([0, 2]);
  });

  it('rejects bad indices before running, naming the op, the index and the size', () => {
    const x = rand([4, 3]);
    expect(() => indexSelect(x, 0, tensor([1, 4], { dtype: 'int32' }))).toThrow(
      'indexSelect: index 4 (at position 1) is out of range for dim 0 of size 4',
    );
    expect(() => indexSelect(x, 1, tensor([-1], { dtype: 'int32' }))).toThrow('indexSelect: index -1 (at position 0) is out of range for dim 1 of size 3');
    expect(() => indexSelect(x, 0, tensor([0, 1]))).toThrow('indexSelect: index must be int32, got float32[2]');
    expect(() => indexSelect(x, 0, tensor([[0]], { dtype: 'int32' }))).toThrow('indexSelect: index must be 1-D');
    expect(() => indexSelect(x, 2, tensor([0], { dtype: 'int32' }))).toThrow('indexSelect: axis 2 is out of range for a tensor of rank 2');
    registerBackend({ ...cpuBackend, name: 'other' });
    expect(() => indexSelect(x, 0, tensor([0], { dtype: 'int32' }).to('other'))).toThrow('indexSelect: all tensors must be on one device');
  });
});

describe('embedding', () => {
  it('picks rows for ids of any shape', () => {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const table = rand([7, 3], dtype);
      const ids = indices([2, 4], 7, seed++);
      const out = embedding(table, ids);
      expect(out.shape).toEqual([2, 4, 3]);
      expect(Array.from(out.toFloat64Array())).toEqual(Array.from(refIndexSelect(table, 0, reshapeIds(ids))));
    }
    const table = transpose(rand([3, 5]));
    expect(embedding(table, tensor(2, { dtype: 'int32' })).toFloat64Array()).toEqual(refIndexSelect(table, 0, tensor([2], { dtype: 'int32' })));
    expect(embedding(table, tensor(2, { dtype: 'int32' })).shape).toEqual([3]);
    const nc = indices([3, 2], 5, seed++, true);
    expect(embedding(table, nc).shape).toEqual([3, 2, 3]);
    expect(Array.from(embedding(table, nc).toFloat64Array())).toEqual(Array.from(refIndexSelect(table, 0, reshapeIds(nc))));
  });

  it('rejects bad ids naming embedding', () => {
    const table = rand([5, 2]);
    expect(() => embedding(table, tensor([[0, 5]], { dtype: 'int32' }))).toThrow('embedding: index 5 (at position 1) is out of range for dim 0 of size 5');
    expect(() => embedding(table, tensor([0]))).toThrow('embedding: index must be int32');
    expect(() => embedding(tensor(1), tensor([0], { dtype: 'int32' }))).toThrow('embedding: table must have at least one dimension');
  });
});

function reshapeIds(ids: Tensor): Tensor {
  return tensor(Int32Array.from(ids.toFloat64Array()), { dtype: 'int32' });
}

describe('gather', () => {
  it('matches torch.gather on every axis, dtype and layout, with smaller index dims', () => {
    for (const dtype of DTYPES) {
      const sources = [rand([4, 5, 3], dtype), rand([4, 5, 3], dtype, true), transpose(rand([4, 3, 5], dtype), 1, 2)];
      for (const x of sources) {
        for (const axis of [0, 1, 2, -1]) {
          const ax = axis < 0 ? axis + 3 : axis;
          const shape = [3, 4, 2];
          shape[ax] = 6; // may exceed x's size on the gathered axis
          const index = indices(shape, x.shape[ax]!, seed++, seed % 2 === 0);
          const out = gather(x, axis, index);
          expect(out.shape).toEqual(shape);
          expect(out.dtype).toBe(dtype);
          expect(Array.from(out.toFloat64Array())).toEqual(Array.from(refGather(x, ax, index)));
        }
      }
    }
    expect(gather(rand([2, 3]), 1, tensor(new Int32Array(0), { shape: [2, 0], dtype: 'int32' })).shape).toEqual([2, 0]);
  });

  it('rejects bad indices and shapes', () => {
    const x = rand([3, 4]);
    expect(() => gather(x, 1, tensor([[0, 4]], { dtype: 'int32' }))).toThrow('gather: index 4 (at position 1) is out of range for dim 1 of size 4');
    expect(() => gather(x, 0, tensor([[-2]], { dtype: 'int32' }))).toThrow('gather: index -2');
    expect(() => gather(x, 0, tensor([0], { dtype: 'int32' }))).toThrow('gather: index must have the rank of x (2)');
    expect(() => gather(x, 0, tensor([[0, 0, 0, 0, 0]], { dtype: 'int32' }))).toThrow(
      'gather: index [1, 5] is larger than x [3, 4] at dim 1 (only dim 0 may differ)',
    );
    expect(() => gather(x, 0, tensor([[0]], { dtype: 'float32' }))).toThrow('gather: index must be int32');
    expect(() => gather(x, -3, tensor([[0]], { dtype: 'int32' }))).toThrow('gather: axis -3 is out of range');
  });
});

describe('scatterAdd', () => {
  const floats: DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int8'];
  it('accumulates repeated targets (torch scatter_add, out of place) for every dtype and layout', () => {
    for (const dtype of floats) {
      for (const axis of [0, 1, -1]) {
        const ax = axis < 0 ? axis + 2 : axis;
        const x = seed % 2 === 0 ? rand([4, 5], dtype) : transpose(rand([5, 4], dtype));
        const src = rand([5, 6], dtype, true); // larger than index on every dim
        const shape = [3, 4];
        shape[ax] = 5;
        const index = indices(shape, x.shape[ax]!, seed++);
        const before = x.toFloat64Array();
        const out = scatterAdd(x, axis, index, src);
        expect(out.shape).toEqual([4, 5]);
        expect(out.dtype).toBe(dtype);
        const ref = refScatterAdd(x, ax, index, src);
        if (dtype === 'bfloat16' || dtype === 'float16') assertClose(out, ref, { rtol: 1e-2, atol: 5e-2 });
        else if (dtype === 'int8') expect(Array.from(out.toFloat64Array())).toEqual(Array.from(Int8Array.from(ref)));
        else assertClose(out, ref, { rtol: 1e-6, atol: 1e-6 });
        expect(x.toFloat64Array()).toEqual(before); // out of place
      }
    }
  });

  it('handles an empty index and broadcast inputs', () => {
    const x = rand([2, 3]);
    const none = tensor(new Int32Array(0), { shape: [0, 3], dtype: 'int32' });
    expect(scatterAdd(x, 0, none, rand([2, 3])).toFloat64Array()).toEqual(x.toFloat64Array());
    const bx = expand(rand([1, 3]), [4, 3]);
    const src = expand(rand([3]), [4, 3]);
    const index = indices([4, 3], 4, seed++);
    assertClose(scatterAdd(bx, 0, index, src), refScatterAdd(bx, 0, index, src));
  });

  it('rejects bad indices, shapes and dtypes', () => {
    const x = rand([3, 4]);
    const src = rand([3, 4]);
    expect(() => scatterAdd(x, 0, tensor([[3]], { dtype: 'int32' }), src)).toThrow('scatterAdd: index 3 (at position 0) is out of range for dim 0 of size 3');
    expect(() => scatterAdd(x, 0, tensor([[0]], { dtype: 'int32' }), rand([3, 4], 'float64'))).toThrow('scatterAdd: src float64[3, 4] on cpu must have the dtype of x');
    expect(() => scatterAdd(x, 0, tensor([[0]], { dtype: 'int32' }), rand([4]))).toThrow('scatterAdd: src must have the rank of x (2)');
    expect(() => scatterAdd(x, 0, tensor([0], { dtype: 'int32' }), src)).toThrow('scatterAdd: index must have the rank of x');
    expect(() => scatterAdd(x, 0, indices([4, 2], 3, 1), rand([3, 4]))).toThrow('scatterAdd: index [4, 2] is larger than src [3, 4] at dim 0');
    expect(() => scatterAdd(x, 0, indices([2, 5], 3, 1), rand([3, 5]))).toThrow('scatterAdd: index [2, 5] is larger than x [3, 4] at dim 1');
  });
});

describe('indexAdd', () => {
  it('adds slices of src at repeated indices (torch index_add, out of place)', () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'int32'] as const) {
      for (const axis of [0, 1, 2, -2]) {
        const ax = axis < 0 ? axis + 3 : axis;
        const x = seed % 2 === 0 ? rand([5, 3, 4], dtype) : permute(rand([3, 4, 5], dtype), [2, 0, 1]);
        const srcShape = [5, 3, 4];
        srcShape[ax] = 6;
        const src = rand(srcShape, dtype, true);
        const index = indices([6], x.shape[ax]!, seed++);
        const out = indexAdd(x, axis, index, src);
        expect(out.shape).toEqual([5, 3, 4]);
        const ref = refIndexAdd(x, ax, index, src);
        if (dtype === 'bfloat16') assertClose(out, ref, { rtol: 1e-2, atol: 5e-2 });
        else assertClose(out, ref, { rtol: 1e-6, atol: 1e-6 });
      }
    }
    const x = rand([2, 3]);
    expect(indexAdd(x, 0, tensor(new Int32Array(0), { dtype: 'int32' }), rand([0, 3])).toFloat64Array()).toEqual(x.toFloat64Array());
  });

  it('rejects bad indices and shapes', () => {
    const x = rand([3, 4]);
    expect(() => indexAdd(x, 1, tensor([0, 4], { dtype: 'int32' }), rand([3, 2]))).toThrow('indexAdd: index 4 (at position 1) is out of range for dim 1 of size 4');
    expect(() => indexAdd(x, 1, tensor([0, -1], { dtype: 'int32' }), rand([3, 2]))).toThrow('indexAdd: index -1');
    expect(() => indexAdd(x, 1, tensor([0, 1], { dtype: 'int32' }), rand([3, 3]))).toThrow(
      'indexAdd: src must have shape [3, 2] (x [3, 4] with dim 1 = index length), got [3, 3]',
    );
    expect(() => indexAdd(x, 1, tensor([[0]], { dtype: 'int32' }), rand([3, 1]))).toThrow('indexAdd: index must be 1-D');
    expect(() => indexAdd(x, 0, tensor([0], { dtype: 'int32' }), rand([1, 4], 'float64'))).toThrow('indexAdd: src float64[1, 4] on cpu must have the dtype of x');
  });
});

describe('index ops on random values stay consistent with each other', () => {
  it('indexAdd of a selection equals scatterAdd of the matching gather layout', () => {
    const values = randomValues(12, 7);
    const x = tensor(values, { shape: [4, 3] });
    const idx = tensor([2, 0, 2], { dtype: 'int32' });
    const src = slice(rand([3, 6]), 1, 0, 6, 2);
    const viaIndexAdd = indexAdd(x, 0, idx, src);
    const expanded = tensor(Int32Array.from([2, 2, 2, 0, 0, 0, 2, 2, 2]), { shape: [3, 3], dtype: 'int32' });
    assertClose(viaIndexAdd, scatterAdd(x, 0, expanded, src));
  });
});

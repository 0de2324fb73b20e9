import { afterEach, describe, expect, it } from 'vitest';
import {
  arange, clone, contiguous, expand, flatten, memoryStats, narrow, permute, reshape, setOpObserver, slice, squeeze,
  storageArrayCtor, tensor, transpose, unsqueeze, view, zeros, type OpRecord, type Tensor,
} from '../src/index.js';
import { nonContiguousTensor, randomValues } from '../src/testing.js';

/** Row-major values of the `shape` tensor whose element at index `idx` is `at(idx)`. */
function gather(shape: readonly number[], at: (idx: number[]) => number): number[] {
  const out: number[] = [];
  const idx = new Array<number>(shape.length).fill(0);
  const total = shape.reduce((a, b) => a * b, 1);
  for (let n = 0; n < total; n++) {
    out.push(at(idx));
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]! += 1;
      if (idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Row-major flat index of `idx` in a contiguous tensor of `shape`. */
function flatIndex(shape: readonly number[], idx: readonly number[]): number {
  let f = 0;
  for (let d = 0; d < shape.length; d++) f = f * shape[d]! + idx[d]!;
  return f;
}

function values(t: Tensor): number[] {
  return Array.from(t.toFloat64Array());
}

const base234 = (): { t: Tensor; v: Float64Array } => {
  const v = randomValues(24, 5, -10, 10);
  return { t: tensor(v, { shape: [2, 3, 4], dtype: 'float64' }), v };
};

describe('reshape and view', () => {
  it('reshapes contiguous tensors without copying, inferring one -1', () => {
    const { t, v } = base234();
    for (const [target, want] of [[[6, 4], [6, 4]], [[-1], [24]], [[4, -1, 2], [4, 3, 2]], [[2, 3, 4], [2, 3, 4]], [[1, 24, 1], [1, 24, 1]]] as const) {
      const r = reshape(t, target);
      expect(r.shape).toEqual(want);
      expect(r.storage).toBe(t.storage);
      expect(r.isContiguous).toBe(true);
      expect(values(r)).toEqual(Array.from(v));
    }
    expect(reshape(tensor([5]), []).shape).toEqual([]);
    expect(reshape(zeros([0, 3]), [3, -1, 5]).shape).toEqual([3, 0, 5]);
  });

  it('copies a non-contiguous tensor first, keeping row-major order', () => {
    const { t, v } = base234();
    const p = permute(t, [2, 0, 1]); // [4, 2, 3]
    const r = reshape(p, [8, 3]);
    expect(r.storage).not.toBe(t.storage);
    expect(values(r)).toEqual(gather([4, 2, 3], ([k, i, j]) => v[flatIndex([2, 3, 4], [i!, j!, k!])]!));
  });

  it('rejects impossible shapes with the sizes in the message', () => {
    const t = zeros([2, 3]);
    expect(() => reshape(t, [4, 2])).toThrow('reshape: cannot reshape [2, 3] (6 elements) into [4, 2] (8 elements)');
    expect(() => reshape(t, [-1, 4])).toThrow('reshape: cannot reshape [2, 3] (6 elements) into [-1, 4]');
    expect(() => reshape(t, [-1, -1])).toThrow('reshape: only one dimension may be -1, got [-1, -1]');
    expect(() => reshape(t, [2.5, 2])).toThrow('reshape: invalid target shape [2.5, 2]');
    expect(() => reshape(zeros([0]), [0, -1])).toThrow(/cannot reshape \[0\]/);
  });

  it('view refuses non-contiguous tensors and shares storage otherwise', () => {
    const { t } = base234();
    expect(view(t, [4, 6]).storage).toBe(t.storage);
    expect(() => view(transpose(t), [24])).toThrow(
      'view: tensor float64[2, 4, 3] on cpu is not contiguous (strides [12, 1, 4]); use reshape or contiguous first',
    );
    const d = zeros([2]);
    d.dispose();
    expect(() => view(d, [2])).toThrow('view: tensor float32[2] on cpu was disposed');
  });
});

describe('permute and transpose', () => {
  it('reorder dimensions as views', () => {
    const { t, v } = base234();
    const p = permute(t, [1, -1, 0]); // [3, 4, 2]
    expect(p.shape).toEqual([3, 4, 2]);
    expect(p.strides).toEqual([4, 1, 12]);
    expect(p.storage).toBe(t.storage);
    expect(p.isContiguous).toBe(false);
    expect(values(p)).toEqual(gather([3, 4, 2], ([j, k, i]) => v[flatIndex([2, 3, 4], [i!, j!, k!])]!));
    const tr = transpose(t); // last two
    expect(values(tr)).toEqual(gather([2, 4, 3], ([i, k, j]) => v[flatIndex([2, 3, 4], [i!, j!, k!])]!));
    const t02 = transpose(t, 0, 2);
    expect(t02.shape).toEqual([4, 3, 2]);
    expect(values(transpose(t02, 2, 0))).toEqual(Array.from(v));
    expect(transpose(tensor([[1, 2, 3]])).toArray()).toEqual([[1], [2], [3]]);
  });

  it('errors name the dims', () => {
    const t = zeros([2, 3]);
    expect(() => permute(t, [0])).toThrow('permute: got 1 dims [0] for a tensor of rank 2 [2, 3]');
    expect(() => permute(t, [1, 1])).toThrow('permute: dims [1, 1] are not a permutation');
    expect(() => permute(t, [0, 2])).toThrow('permute: axis 2 is out of range for a tensor of rank 2');
    expect(() => transpose(zeros([3]))).toThrow('transpose: axis -2 is out of range for a tensor of rank 1');
  });
});

describe('slice and narrow', () => {
  it('slice with steps, negative and out-of-range bounds', () => {
    const x = arange(10, undefined, 1, { dtype: 'int32' });
    const cases: [number, number | undefined, number, number[]][] = [
      [2, 7, 1, [2, 3, 4, 5, 6]],
      [1, undefined, 3, [1, 4, 7]],
      [0, 10, 4, [0, 4, 8]],
      [-3, undefined, 1, [7, 8, 9]],
      [-8, -2, 2, [2, 4, 6]],
      [-100, 2, 1, [0, 1]],
      [8, 100, 1, [8, 9]],
      [5, 5, 1, []],
      [7, 3, 1, []],
      [10, undefined, 1, []],
      [-Infinity, Infinity, 4, [0, 4, 8]],
    ];
    for (const [start, end, step, want] of cases) {
      const s = slice(x, 0, start, end, step);
      expect(values(s), `slice(${start}, ${end}, ${step})`).toEqual(want);
      expect(s.storage).toBe(x.storage);
    }
  });

  it('slices any axis of a multi-dimensional tensor, and slices of slices', () => {
    const { t, v } = base234();
    const s = slice(t, 2, 1, 4, 2); // [2, 3, 2]: k = 1, 3
    expect(s.shape).toEqual([2, 3, 2]);
    expect(values(s)).toEqual(gather([2, 3, 2], ([i, j, k]) => v[flatIndex([2, 3, 4], [i!, j!, 1 + 2 * k!])]!));
    const ss = slice(slice(s, -2, 1), 0, -1); // [1, 2, 2]: i = 1, j = 1, 2
    expect(values(ss)).toEqual(gather([1, 2, 2], ([, j, k]) => v[flatIndex([2, 3, 4], [1, 1 + j!, 1 + 2 * k!])]!));
    expect(ss.offset).toBe(12 + 4 + 1);
  });

  it('slice errors', () => {
    const x = zeros([4]);
    expect(() => slice(x, 0, 0, 4, 0)).toThrow('slice: step must be a positive integer, got 0');
    expect(() => slice(x, 0, 0, 4, -1)).toThrow('slice: step must be a positive integer, got -1');
    expect(() => slice(x, 0, 0.5)).toThrow('slice: start and end must be integers, got 0.5 and undefined');
    expect(() => slice(x, 0, 0, NaN)).toThrow('slice: start and end must be integers, got 0 and NaN');
    expect(() => slice(x, 1, 0)).toThrow('slice: axis 1 is out of range for a tensor of rank 1');
  });

  it('narrow takes an exact range and rejects ranges that do not fit', () => {
    const { t, v } = base234();
    const n = narrow(t, 1, 1, 2);
    expect(n.shape).toEqual([2, 2, 4]);
    expect(values(n)).toEqual(gather([2, 2, 4], ([i, j, k]) => v[flatIndex([2, 3, 4], [i!, 1 + j!, k!])]!));
    expect(narrow(t, -1, 4, 0).shape).toEqual([2, 3, 0]);
    expect(() => narrow(t, 1, 2, 2)).toThrow('narrow: range [2, 4) does not fit dim 1 of size 3 in [2, 3, 4]');
    expect(() => narrow(t, 0, -1, 1)).toThrow('narrow: range [-1, 0) does not fit dim 0 of size 2');
    expect(() => narrow(t, 0, 0, 1.5)).toThrow(/^narrow: range/);
  });
});

describe('expand', () => {
  it('broadcasts size-1 and new leading dims with stride 0', () => {
    const col = tensor([[1], [2], [3]]);
    const e = expand(col, [2, 3, 4]);
    expect(e.shape).toEqual([2, 3, 4]);
    expect(e.strides).toEqual([0, 1, 0]);
    expect(e.storage).toBe(col.storage);
    expect(values(e)).toEqual(gather([2, 3, 4], ([, j]) => j! + 1));
    expect(expand(col, [-1, 2]).toArray()).toEqual([[1, 1], [2, 2], [3, 3]]);
    expect(expand(col, [3, 1])).toBe(col);
    expect(expand(tensor(7), [2, 2]).toArray()).toEqual([[7, 7], [7, 7]]);
    expect(expand(col, [3, 0]).shape).toEqual([3, 0]);
  });

  it('errors', () => {
    const x = zeros([3, 1]);
    expect(() => expand(x, [3])).toThrow('expand: cannot expand [3, 1] to fewer dims [3]');
    expect(() => expand(x, [4, 2])).toThrow('expand: cannot expand [3, 1] to [4, 2] (dim 0: 3 vs 4)');
    expect(() => expand(x, [-1, 3, 1])).toThrow(
      'expand: invalid size -1 at dim 0 of [-1, 3, 1] for [3, 1] (-1 only keeps an existing dim, not a new leading one)',
    );
    expect(() => expand(x, [3, -2])).toThrow('expand: invalid size -2 at dim 1 of [3, -2] for [3, 1]');
  });
});

describe('squeeze, unsqueeze, flatten', () => {
  it('squeeze drops size-1 dims (all, or one) and keeps strides of the rest', () => {
    const { t } = base234();
    const p = permute(unsqueeze(t, 1), [3, 1, 0, 2]); // [4, 1, 2, 3], non-contiguous
    const s = squeeze(p);
    expect(s.shape).toEqual([4, 2, 3]);
    expect(s.storage).toBe(t.storage);
    expect(values(s)).toEqual(values(permute(t, [2, 0, 1])));
    expect(squeeze(p, 1).shape).toEqual([4, 2, 3]);
    expect(squeeze(p, 0)).toBe(p); // not size 1: unchanged
    expect(squeeze(zeros([1, 1])).shape).toEqual([]);
    expect(() => squeeze(p, 4)).toThrow('squeeze: axis 4 is out of range for a tensor of rank 4');
  });

  it('unsqueeze inserts a size-1 dim anywhere, also on non-contiguous tensors', () => {
    const { t } = base234();
    const tr = transpose(t);
    for (const [axis, shape] of [[0, [1, 2, 4, 3]], [3, [2, 4, 3, 1]], [-1, [2, 4, 3, 1]], [-4, [1, 2, 4, 3]], [1, [2, 1, 4, 3]]] as const) {
      const u = unsqueeze(tr, axis);
      expect(u.shape).toEqual(shape);
      expect(u.storage).toBe(t.storage);
      expect(values(u)).toEqual(values(tr));
    }
    expect(unsqueeze(tensor(3), 0).shape).toEqual([1]);
    expect(() => unsqueeze(tr, 4)).toThrow('unsqueeze: axis 4 is out of range for a tensor of rank 4');
  });

  it('flatten merges a range of dims', () => {
    const { t, v } = base234();
    expect(flatten(t).shape).toEqual([24]);
    expect(flatten(t, 1).shape).toEqual([2, 12]);
    expect(flatten(t, 0, 1).shape).toEqual([6, 4]);
    expect(flatten(t, -2, -1).shape).toEqual([2, 12]);
    expect(flatten(tensor(4)).shape).toEqual([1]);
    const ft = flatten(transpose(t));
    expect(values(ft)).toEqual(gather([2, 4, 3], ([i, k, j]) => v[flatIndex([2, 3, 4], [i!, j!, k!])]!));
    expect(() => flatten(t, 2, 1)).toThrow('flatten: end dim 1 is before start dim 2');
  });
});

describe('contiguous and clone', () => {
  it('contiguous returns the tensor itself when already contiguous, else a dense copy', () => {
    const { t, v } = base234();
    expect(contiguous(t)).toBe(t);
    const tr = transpose(t, 0, 1);
    const c = contiguous(tr);
    expect(c.isContiguous).toBe(true);
    expect(c.storage).not.toBe(t.storage);
    expect(c.strides).toEqual([8, 4, 1]);
    expect(values(c)).toEqual(gather([3, 2, 4], ([j, i, k]) => v[flatIndex([2, 3, 4], [i!, j!, k!])]!));
    // Size-1 dims may have any stride and still count as contiguous.
    expect(slice(t, 1, 1, 2).isContiguous).toBe(false);
    expect(slice(zeros([1, 4]), 0, 0, 1).isContiguous).toBe(true);
  });

  it('clone always copies; copies keep half-precision bits (NaN payloads included)', () => {
    const { t } = base234();
    const c = clone(t);
    expect(c.storage).not.toBe(t.storage);
    expect(values(c)).toEqual(values(t));
    const bits = new Uint16Array([0x7e01, 0xfc00, 0x0001, 0x8000, 0x3c00, 0xfe03]);
    const h = tensor(bits, { shape: [2, 3], dtype: 'float16' });
    expect(Array.from(clone(h).toTypedArray())).toEqual(Array.from(bits));
    expect(Array.from(contiguous(transpose(h)).toTypedArray())).toEqual([0x7e01, 0x8000, 0xfc00, 0x3c00, 0x0001, 0xfe03]);
  });

  it('strided views of every dtype read back their values', () => {
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'int8', 'uint8'] as const) {
      const v = [1, 2, 3, 4, 5, 6];
      const x = nonContiguousTensor(v, [2, 3], dtype);
      expect(x.isContiguous).toBe(false);
      expect(values(contiguous(x))).toEqual(v);
      expect(contiguous(x).toTypedArray()).toBeInstanceOf(storageArrayCtor(dtype));
    }
  });
});

describe('views share storage', () => {
  it('a write through storage is seen by every view', () => {
    const base = zeros([3, 4]);
    const views = [transpose(base), slice(base, 1, 1, 3), reshape(base, [12]), expand(slice(base, 0, 0, 1), [5, 4]), unsqueeze(base, 0)];
    (base.storage.handle as Float32Array)[5] = 42; // row 1, column 1
    expect((transpose(base).toArray() as number[][])[1]![1]).toBe(42);
    expect(values(views[1]!)).toEqual([0, 0, 42, 0, 0, 0]);
    expect(values(views[2]!)[5]).toBe(42);
    expect(values(views[3]!).every((x) => x === 0)).toBe(true); // row 0 only
    (base.storage.handle as Float32Array)[2] = 7;
    expect(values(views[3]!).filter((x) => x === 7).length).toBe(5);
    expect(values(views[0]!)[2 * 3]).toBe(7);
    for (const w of views) expect(w.storage).toBe(base.storage);
  });

  it('views allocate no storage and keep it alive after the base is disposed', () => {
    const before = memoryStats();
    const base = zeros([4, 4], { dtype: 'float64' });
    const afterBase = memoryStats();
    expect(afterBase.bytes - before.bytes).toBe(128);
    expect(afterBase.liveStorages - before.liveStorages).toBe(1);
    const v = transpose(slice(base, 0, 1));
    expect(memoryStats().bytes).toBe(afterBase.bytes);
    expect(memoryStats().liveTensors).toBe(afterBase.liveTensors + 2); // the slice and its transpose
    base.dispose();
    expect(memoryStats().bytes).toBe(afterBase.bytes);
    expect(values(v)).toEqual(new Array(12).fill(0));
    v.dispose();
    expect(() => v.toArray()).toThrow('toTypedArray: tensor float64[4, 3] on cpu was disposed');
    expect(() => transpose(v)).toThrow('permute: tensor float64[4, 3] on cpu was disposed');
  });
});

describe('op records of views', () => {
  const records: OpRecord[] = [];
  afterEach(() => {
    setOpObserver(null);
    records.length = 0;
  });

  it('announce the contract names and attrs', () => {
    const t = zeros([2, 3]);
    setOpObserver((r) => records.push(r));
    reshape(t, [3, -1]);
    permute(t, [1, 0]);
    slice(t, 1, -2, undefined, 1);
    expand(t, [4, 2, 3]);
    unsqueeze(t, 0);
    clone(t);
    expect(records.map((r) => [r.op, r.attrs])).toEqual([
      ['reshape', { shape: [3, 2], from: [2, 3] }],
      ['permute', { dims: [1, 0] }],
      ['slice', { axis: 1, start: 1, end: 3, step: 1 }],
      ['expand', { shape: [4, 2, 3], from: [2, 3] }],
      ['reshape', { shape: [1, 2, 3], from: [2, 3] }],
      ['copy', {}],
    ]);
    for (const r of records) expect(r.inputs[0]).toBe(t);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import {
  add, arange, cast, dispose, empty, eye, full, fullLike, keep, memoryStats, ones, onesLike, scalar, setOpObserver,
  storageArrayCtor, tensor, tidy, transpose, zeros, zerosLike, DTYPES, type DType, type OpRecord, type Tensor,
} from '../src/index.js';
import { nonContiguousTensor } from '../src/testing.js';

function values(t: Tensor): number[] {
  return Array.from(t.toFloat64Array());
}

describe('tensor()', () => {
  it('infers shapes from nested arrays', () => {
    const t = tensor([[[1, 2, 3], [4, 5, 6]]]);
    expect(t.shape).toEqual([1, 2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.device).toBe('cpu');
    expect(t.toArray()).toEqual([[[1, 2, 3], [4, 5, 6]]]);
    expect(tensor(2.5).shape).toEqual([]);
    expect(tensor(2.5).item()).toBe(2.5);
    expect(scalar(-3, { dtype: 'int8' }).toArray()).toBe(-3);
    expect(tensor([]).shape).toEqual([0]);
    expect(tensor([[], []]).shape).toEqual([2, 0]);
    expect(tensor([1, 2, 3, 4], { shape: [2, 2] }).toArray()).toEqual([[1, 2], [3, 4]]);
  });

  it('rejects ragged arrays, non-numbers and bad shapes', () => {
    expect(() => tensor([[1, 2], [3]])).toThrow('tensor: ragged nested array at depth 1 (expected length 2)');
    expect(() => tensor([[1, 2], 3] as never)).toThrow('tensor: ragged nested array at depth 1 (expected length 2)');
    expect(() => tensor([1, [2]] as never)).toThrow('tensor: ragged nested array (expected a number at depth 1)');
    expect(() => tensor(['a'] as never)).toThrow('tensor: ragged nested array (expected a number at depth 1)');
    expect(() => tensor([1, 2, 3], { shape: [2, 2] })).toThrow('tensor: 3 values do not fill shape [2, 2]');
    expect(() => tensor([1, 2], { shape: [-1, -2] })).toThrow('tensor: shape must be an array of non-negative integers, got [-1,-2]');
    expect(() => tensor(new Float32Array(3), { shape: [2, 2] })).toThrow('tensor: 3 values do not fill shape [2, 2] (4 elements)');
    expect(() => tensor([1], { dtype: 'float8' as DType })).toThrow("tensor: unknown dtype 'float8'");
  });

  it('takes typed arrays: raw when the storage type matches, converted otherwise', () => {
    const raw = tensor(new Uint16Array([0x3c00, 0xc000]), { dtype: 'float16' });
    expect(values(raw)).toEqual([1, -2]);
    const bf = tensor(new Float32Array([1, 0.1]), { dtype: 'bfloat16' });
    expect(Array.from(bf.toTypedArray())).toEqual([0x3f80, 0x3dcd]);
    const ints = tensor(new Float64Array([1.9, -1.9, 300, NaN]), { dtype: 'int8' });
    expect(values(ints)).toEqual([1, -1, 44, 0]); // truncation toward zero, wraps, NaN -> 0
    expect(values(tensor(new Int32Array([7, -8]), { dtype: 'float64' }))).toEqual([7, -8]);
    const data = new Float32Array([1, 2]);
    const t = tensor(data);
    data[0] = 99;
    expect(values(t)).toEqual([1, 2]); // copied
  });

  it('rounds values into each dtype', () => {
    const v = [0.1, -1.5, 3.75, 1000.6];
    expect(values(tensor(v, { dtype: 'float64' }))).toEqual(v);
    expect(values(tensor(v, { dtype: 'float32' }))).toEqual(v.map(Math.fround));
    expect(values(tensor(v, { dtype: 'bfloat16' }))).toEqual([0.10009765625, -1.5, 3.75, 1000]);
    expect(values(tensor(v, { dtype: 'float16' }))).toEqual([0.0999755859375, -1.5, 3.75, 1000.5]);
    expect(values(tensor(v, { dtype: 'int32' }))).toEqual([0, -1, 3, 1000]);
    expect(values(tensor([-1, 256], { dtype: 'uint8' }))).toEqual([255, 0]);
  });
});

describe('full, zeros, ones and the *Like helpers', () => {
  it('fill every dtype', () => {
    for (const dtype of DTYPES) {
      const f = full([2, 3], 5, { dtype });
      expect(f.dtype).toBe(dtype);
      expect(f.shape).toEqual([2, 3]);
      expect(f.toTypedArray()).toBeInstanceOf(storageArrayCtor(dtype));
      expect(values(f)).toEqual(new Array(6).fill(5));
      expect(values(zeros([4], { dtype }))).toEqual([0, 0, 0, 0]);
      expect(values(ones([1, 2], { dtype }))).toEqual([1, 1]);
      const like = zerosLike(f);
      expect([like.dtype, like.shape]).toEqual([dtype, [2, 3]]);
      expect(values(onesLike(f, { dtype: 'float64' }))).toEqual(new Array(6).fill(1));
      expect(onesLike(f, { dtype: 'float64' }).dtype).toBe('float64');
      expect(values(fullLike(f, 2))).toEqual(new Array(6).fill(2));
    }
    expect(zeros([]).shape).toEqual([]);
    expect(zeros([3, 0]).numel).toBe(0);
    expect(empty([2, 2], { dtype: 'int8' }).shape).toEqual([2, 2]);
  });

  it('round the fill value into half dtypes; integers must fit', () => {
    expect(Array.from(full([2], 0.1, { dtype: 'bfloat16' }).toTypedArray())).toEqual([0x3dcd, 0x3dcd]);
    expect(Array.from(full([1], 65520, { dtype: 'float16' }).toTypedArray())).toEqual([0x7c00]);
    expect(values(full([1], NaN))).toEqual([NaN]);
    expect(() => full([2], 1.5, { dtype: 'int32' })).toThrow('full: 1.5 is not an integer, so it cannot be stored as int32');
    expect(() => full([2], 256, { dtype: 'uint8' })).toThrow('full: 256 is outside the uint8 range [0, 255]');
    expect(() => full([2], -129, { dtype: 'int8' })).toThrow(RangeError);
    expect(values(full([1], -128, { dtype: 'int8' }))).toEqual([-128]);
    expect(() => full([2.5], 0)).toThrow('full: shape must be an array of non-negative integers, got [2.5]');
    expect(() => zeros([-1])).toThrow('full: shape must be an array of non-negative integers');
  });
});

describe('arange and eye', () => {
  it('arange counts with one, two or three arguments', () => {
    expect(values(arange(5))).toEqual([0, 1, 2, 3, 4]);
    expect(values(arange(2, 6))).toEqual([2, 3, 4, 5]);
    expect(values(arange(1, 2, 0.25, { dtype: 'float64' }))).toEqual([1, 1.25, 1.5, 1.75]);
    expect(values(arange(5, 0, -2, { dtype: 'int32' }))).toEqual([5, 3, 1]);
    expect(values(arange(3, 3))).toEqual([]);
    expect(values(arange(3, 1))).toEqual([]);
    expect(arange(0, 1, 0.1, { dtype: 'float64' }).shape).toEqual([10]);
    expect(arange(4, undefined, 1, { dtype: 'uint8' }).dtype).toBe('uint8');
    expect(values(arange(0, 3, 1, { dtype: 'bfloat16' }))).toEqual([0, 1, 2]);
  });

  it('arange errors', () => {
    expect(() => arange(0, 5, 0)).toThrow('arange: step must be finite and non-zero, got 0');
    expect(() => arange(0, 5, Infinity)).toThrow('arange: step must be finite and non-zero, got Infinity');
    expect(() => arange(NaN)).toThrow('arange: start and end must be finite, got 0 and NaN');
    expect(() => arange(0, Infinity)).toThrow('arange: start and end must be finite');
  });

  it('eye puts ones on the diagonal, square or not', () => {
    expect(eye(3).toArray()).toEqual([[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
    expect(eye(2, 3, { dtype: 'int32' }).toArray()).toEqual([[1, 0, 0], [0, 1, 0]]);
    expect(eye(3, 1, { dtype: 'float16' }).toArray()).toEqual([[1], [0], [0]]);
    expect(eye(0).shape).toEqual([0, 0]);
    expect(() => eye(-1)).toThrow('eye: shape must be an array of non-negative integers');
  });
});

describe('cast', () => {
  it('float -> int truncates toward zero; NaN becomes 0; out-of-range values wrap', () => {
    const x = tensor([1.7, -1.7, 2.5, -0.4, NaN, 127.9, 128, -129], { dtype: 'float64' });
    expect(values(cast(x, 'int32'))).toEqual([1, -1, 2, 0, 0, 127, 128, -129]);
    expect(values(cast(x, 'int8'))).toEqual([1, -1, 2, 0, 0, 127, -128, 127]);
    expect(values(cast(tensor([-1, 255.5, 256]), 'uint8'))).toEqual([255, 255, 0]);
  });

  it('rounds to nearest even into half dtypes and decodes exactly back', () => {
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const fromBits = (b: number): number => ((u32[0] = b), f32[0]!);
    const x = tensor([fromBits(0x3f808000), fromBits(0x3f818000), fromBits(0x3f808001), 65520, -0]);
    expect(Array.from(cast(x, 'bfloat16').toTypedArray())).toEqual([0x3f80, 0x3f82, 0x3f81, 0x4780, 0x8000]);
    expect(Array.from(cast(x, 'float16').toTypedArray())).toEqual([0x3c04, 0x3c0c, 0x3c04, 0x7c00, 0x8000]);
    const back = cast(cast(x, 'bfloat16'), 'float32');
    expect(values(back)).toEqual([1, 1.015625, 1.0078125, 65536, -0]);
    expect(values(cast(tensor(new Uint16Array([0x3c01]), { dtype: 'float16' }), 'float64'))).toEqual([1 + 2 ** -10]);
  });

  it('converts between every pair of dtypes, from strided inputs too', () => {
    const v = [0, 1, 2, 3, 5, 7, 100, 120];
    for (const from of DTYPES) {
      const x = nonContiguousTensor(v, [2, 4], from);
      for (const to of DTYPES) {
        const y = cast(x, to);
        expect(y.dtype).toBe(to);
        expect(y.shape).toEqual([2, 4]);
        expect(values(y), `${from} -> ${to}`).toEqual(v); // all exactly representable everywhere
      }
    }
    expect(values(cast(tensor([200, 255], { dtype: 'uint8' }), 'int8'))).toEqual([-56, -1]);
    expect(values(cast(transpose(tensor([[1, 2], [3, 4]], { dtype: 'int32' })), 'float16'))).toEqual([1, 3, 2, 4]);
  });

  it('always copies, and rejects unknown dtypes and disposed tensors', () => {
    const x = tensor([1, 2]);
    const y = cast(x, 'float32');
    expect(y).not.toBe(x);
    expect(y.storage).not.toBe(x.storage);
    expect(() => cast(x, 'int64' as DType)).toThrow("cast: unknown dtype 'int64'");
    x.dispose();
    expect(() => cast(x, 'float64')).toThrow('cast: tensor float32[2] on cpu was disposed');
  });
});

describe('creation op records', () => {
  const records: OpRecord[] = [];
  afterEach(() => {
    setOpObserver(null);
    records.length = 0;
  });

  it('full records fill {value} with no inputs; cast records cast {dtype}', () => {
    setOpObserver((r) => records.push(r));
    const f = full([2], 3);
    const c = cast(f, 'int8');
    expect(records.map((r) => [r.op, r.inputs.length, r.attrs])).toEqual([['fill', 0, { value: 3 }], ['cast', 1, { dtype: 'int8' }]]);
    expect(records[0]!.outputs[0]).toBe(f);
    expect(records[1]!.outputs[0]).toBe(c);
  });
});

describe('memory: tidy, keep, dispose, memoryStats', () => {
  it('tidy disposes what the function created, except what it returns', () => {
    const before = memoryStats();
    const out = tidy(() => {
      const a = zeros([4]);
      const b = add(a, 1);
      add(b, 2);
      return add(b, 3);
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors + 1);
    expect(after.liveStorages).toBe(before.liveStorages + 1);
    expect(after.bytes).toBe(before.bytes + 16);
    expect(values(out)).toEqual([4, 4, 4, 4]);
    out.dispose();
    expect(memoryStats()).toEqual(before);
  });

  it('returned tensors survive inside arrays, objects and Maps; keep() survives too', () => {
    const before = memoryStats().liveTensors;
    let kept: Tensor | undefined;
    let inner: Tensor | undefined;
    const result = tidy(() => {
      kept = keep(ones([2]));
      inner = zeros([1]);
      zeros([5]); // dropped
      return { list: [ones([1]), { deep: zeros([2]) }], map: new Map([['m', full([1], 3)]]), n: 4 };
    });
    expect(memoryStats().liveTensors).toBe(before + 4);
    expect(inner!.isDisposed).toBe(true);
    expect(kept!.isDisposed).toBe(false);
    expect(values(result.map.get('m')!)).toEqual([3]);
    dispose([result, kept]);
    expect(memoryStats().liveTensors).toBe(before);
    expect((result.list[0] as Tensor).isDisposed).toBe(true);
  });

  it('nested tidy moves results to the enclosing scope', () => {
    const before = memoryStats().liveTensors;
    let fromInner: Tensor | undefined;
    const outer = tidy(() => {
      fromInner = tidy(() => add(zeros([2]), 1));
      expect(fromInner.isDisposed).toBe(false);
      return add(fromInner, 1);
    });
    expect(fromInner!.isDisposed).toBe(true); // not returned by the outer scope
    expect(values(outer)).toEqual([2, 2]);
    outer.dispose();
    expect(memoryStats().liveTensors).toBe(before);
  });

  it('tidy disposes everything when the function throws, and refuses async functions', () => {
    const before = memoryStats().liveTensors;
    let made: Tensor | undefined;
    expect(() => tidy(() => {
      made = zeros([3]);
      throw new Error('boom');
    })).toThrow('boom');
    expect(made!.isDisposed).toBe(true);
    expect(memoryStats().liveTensors).toBe(before);
    expect(() => tidy(() => Promise.resolve(1))).toThrow('tidy: the function must be synchronous (it returned a Promise)');
  });

  it('dispose is idempotent and frees storage only when its last view goes', () => {
    const before = memoryStats();
    const a = zeros([8], { dtype: 'bfloat16' });
    expect(memoryStats().bytes).toBe(before.bytes + 16);
    const v = transpose(a, 0, 0); // a view of the same storage
    a.dispose();
    a.dispose();
    expect(a.isDisposed).toBe(true);
    expect(memoryStats().bytes).toBe(before.bytes + 16);
    v.dispose();
    expect(memoryStats()).toEqual(before);
    expect(() => a.toArray()).toThrow('toTypedArray: tensor bfloat16[8] on cpu was disposed');
  });
});

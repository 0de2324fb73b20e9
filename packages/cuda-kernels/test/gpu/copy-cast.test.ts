// fill, copy (strided -> contiguous, up to rank 8) and cast (every dtype pair) on cuda,
// against plain-loop references and the CPU kernels.
import { copyInto, execute1, expand, isFloatDType, narrow, permute, slice, tensor, type DType, type Tensor } from '@blora/tensor';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { ALL_DTYPES, checkOp, FLOAT_DTYPES, LAYOUTS, makeTensor, roundTo, sizeOf, valuesFor, type Layout } from './helpers.js';

/** ToInt32 of ECMAScript (a typed-array store): truncate, wrap; NaN and +-Infinity give 0. */
function toInt32(v: number): number {
  if (!Number.isFinite(v)) return 0;
  return Number(BigInt.asIntN(32, BigInt(Math.trunc(v))));
}

/** The value `v` takes when cast to `dtype` (the CPU backend's rules). */
function castValue(v: number, dtype: DType): number {
  if (isFloatDType(dtype)) return roundTo([v], dtype)[0]!;
  const i = Number.isNaN(v) ? 0 : toInt32(v);
  if (dtype === 'int8') return (i << 24) >> 24;
  if (dtype === 'uint8') return i & 255;
  return i;
}

const FLOAT_SPECIALS = [0, -0, 1.5, -1.5, 2.5, -2.7, 0.1, 1e-8, 3e-5, 65504, 65519, 65520, 1e10, -1e10, 3.5e38, 1e300,
  300.7, -129.5, 255.5, 2147483647.5, -2147483649, 4294967297, NaN, Infinity, -Infinity, 1 + 2 ** -9, 1 + 3 * 2 ** -9];
const INT_SPECIALS = [0, 1, -1, 127, -128, 128, 255, 256, -129, 16777217, 2147483647, -2147483648, 100000, -77];

describe.skipIf(!cudaAvailable())('fill on cuda', () => {
  it('writes the value of every dtype, bit-exact with the CPU', () => {
    for (const dtype of ALL_DTYPES) {
      const values = isFloatDType(dtype) ? [0, -2.5, 1 / 3, 70000, NaN, -Infinity] : [0, -7, 120, 255];
      for (const value of values) {
        for (const shape of [[0], [1], [3, 7], [1025]]) {
          const n = sizeOf(shape);
          const expected = new Float64Array(n).fill(roundTo([value], dtype)[0]!);
          checkOp({ op: 'fill', inputs: () => [], shape, dtype, attrs: { value }, expected, tolerance: { rtol: 0, atol: 0 } });
          const out = execute1('fill', [], shape, dtype, { value }, 'cuda');
          const cpu = execute1('fill', [], shape, dtype, { value }, 'cpu');
          expect(Array.from(out.toTypedArray())).toEqual(Array.from(cpu.toTypedArray()));
          out.dispose();
          cpu.dispose();
        }
      }
    }
  });
});

/** Reads element `index` (row-major over `view`'s shape) of a strided view straight from its base values. */
function viewElement(base: Float64Array, view: Tensor, index: number): number {
  let rest = index;
  let offset = view.offset;
  for (let d = view.rank - 1; d >= 0; d--) {
    const i = rest % view.shape[d]!;
    rest = Math.floor(rest / view.shape[d]!);
    offset += i * view.strides[d]!;
  }
  return base[offset]!;
}

describe.skipIf(!cudaAvailable())('copy on cuda', () => {
  // Views of a dense base tensor: permuted, sliced with steps, expanded (stride 0), up to rank 8.
  const views: { name: string; base: number[]; make: (t: Tensor) => Tensor }[] = [
    { name: 'dense', base: [4, 9], make: (t) => t },
    { name: 'transposed', base: [7, 33], make: (t) => permute(t, [1, 0]) },
    { name: 'sliced with a step', base: [5, 40], make: (t) => slice(slice(t, 1, 3, 37, 3), 0, 1) },
    { name: 'broadcast', base: [1, 6], make: (t) => expand(t, [9, 6]) },
    { name: 'rank 3 permuted', base: [3, 4, 5], make: (t) => permute(t, [2, 0, 1]) },
    { name: 'rank 8 permuted', base: [2, 1, 3, 2, 1, 2, 3, 2], make: (t) => permute(t, [7, 2, 0, 5, 1, 3, 6, 4]) },
    { name: 'rank 8 sliced', base: [2, 3, 2, 5, 1, 2, 3, 4], make: (t) => slice(permute(t, [3, 1, 0, 2, 4, 5, 6, 7]), 0, 1, 5, 2) },
    { name: 'rank 0', base: [], make: (t) => t },
    { name: 'empty', base: [3, 0, 2], make: (t) => permute(t, [2, 1, 0]) },
  ];

  it('copies every view to a contiguous tensor, bit-exact, for every dtype', () => {
    for (const dtype of ALL_DTYPES) {
      for (const v of views) {
        const baseValues = roundTo(valuesFor(dtype, sizeOf(v.base), 17), dtype);
        const expectedShape = v.make(makeTensor(baseValues, v.base, dtype, 'cpu', 'contiguous')).shape;
        const probe = v.make(makeTensor(baseValues, v.base, dtype, 'cpu', 'contiguous'));
        const expected = Array.from({ length: sizeOf(expectedShape) }, (_, i) => viewElement(baseValues, probe, i));
        checkOp({
          op: 'copy',
          inputs: (device) => [v.make(makeTensor(baseValues, v.base, dtype, device, 'contiguous'))],
          shape: expectedShape,
          dtype,
          expected,
          tolerance: { rtol: 0, atol: 0 },
        });
      }
    }
  });

  it('keeps 16-bit NaN payloads and signed zeros exactly', () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const bits = Uint16Array.from([0x7c01, 0xfe12, 0x8000, 0x0000, 0x7fff, 0x0001, 0x3c00, 0xffff]);
      const base = tensor(bits, { shape: [2, 4], dtype, device: 'cuda' });
      const t = permute(base, [1, 0]);
      const out = execute1('copy', [t], t.shape, dtype);
      const expected = [0, 4, 1, 5, 2, 6, 3, 7].map((i) => bits[i]!);
      expect(Array.from(out.toTypedArray())).toEqual(expected);
      for (const x of [base, t, out]) x.dispose();
    }
  });
});

describe.skipIf(!cudaAvailable())('cast on cuda', () => {
  it('converts between every pair of dtypes with the CPU rounding and wrapping rules', () => {
    for (const from of ALL_DTYPES) {
      const raw = isFloatDType(from) ? FLOAT_SPECIALS : INT_SPECIALS;
      const source = roundTo(raw, from);
      for (const to of ALL_DTYPES) {
        for (const layout of ['contiguous', 'strided'] as Layout[]) {
          checkOp({
            op: 'cast',
            inputs: (device) => [makeTensor(source, [source.length], from, device, layout)],
            shape: [source.length],
            dtype: to,
            attrs: { dtype: to },
            expected: Array.from(source, (v) => castValue(v, to)),
            tolerance: { rtol: 0, atol: 0 },
          });
        }
      }
    }
  });

  it('casts random odd-sized matrices, including transposed views', () => {
    for (const from of FLOAT_DTYPES) {
      for (const to of ALL_DTYPES) {
        const source = roundTo(valuesFor(from, 13 * 29, 5, -300, 300), from);
        checkOp({
          op: 'cast',
          inputs: (device) => [makeTensor(source, [13, 29], from, device, 'transposed')],
          shape: [13, 29],
          dtype: to,
          attrs: { dtype: to },
          expected: Array.from(source, (v) => castValue(v, to)),
          tolerance: { rtol: 0, atol: 0 },
        });
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('copyInto on cuda', () => {
  it('writes any layout into a strided window of a larger buffer, bit-exact with the CPU, the rest untouched', () => {
    for (const dtype of ALL_DTYPES) {
      for (const layout of LAYOUTS) {
        const results = ['cpu', 'cuda'].map((device) => {
          // A [2, 3, 9, 5] buffer; the destination is positions 2..6 of axis 2 (the KV cache's view).
          const buffer = makeTensor(roundTo(valuesFor(dtype, 2 * 3 * 9 * 5, 11, -50, 50), dtype), [2, 3, 9, 5], dtype, device, 'contiguous');
          const src = makeTensor(roundTo(valuesFor(dtype, 2 * 3 * 4 * 5, 12, -50, 50), dtype), [2, 3, 4, 5], dtype, device, layout);
          copyInto(narrow(buffer, 2, 2, 4), src);
          const values = Array.from(buffer.toTypedArray());
          buffer.dispose();
          src.dispose();
          return values;
        });
        expect(results[1]).toEqual(results[0]);
      }
    }
  });

  it('writes through a transposed destination of odd size', () => {
    const results = ['cpu', 'cuda'].map((device) => {
      const buffer = makeTensor(valuesFor('float32', 37 * 13, 21), [37, 13], 'float32', device, 'contiguous');
      const src = makeTensor(valuesFor('float32', 13 * 37, 22), [13, 37], 'float32', device, 'strided');
      copyInto(permute(buffer, [1, 0]), src);
      return Array.from(buffer.toFloat64Array());
    });
    expect(results[1]).toEqual(results[0]);
  });
});

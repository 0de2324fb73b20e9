// indexSelect, gather, scatterAdd and indexAdd on cuda: every dtype, every axis, dense /
// strided / transposed operands, repeated and empty indices, against plain-loop references
// and the CPU kernels.
import { gather, indexAdd, indexSelect, scatterAdd, type DType, type Tensor } from '@blora/tensor';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { assertClose } from '@blora/tensor/testing';
import { ALL_DTYPES, isInt, LAYOUTS, makeTensor, roundTo, sizeOf, stridesOf, toleranceFor, valuesFor, wrapInt, type Layout } from './helpers.js';

const SHAPE = [4, 7, 5];

/** Row-major coordinates of element `i` of `shape`. */
function coordsOf(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}

/** Row-major position of `coords` in `shape`. */
function flatOf(coords: readonly number[], shape: readonly number[]): number {
  const s = stridesOf(shape);
  return coords.reduce((p, c, d) => p + c * s[d]!, 0);
}

/** Runs `op` on cuda and on the CPU from the same values; checks both against `expected`. */
function checkBoth(build: (device: string) => Tensor[], run: (inputs: Tensor[]) => Tensor, expected: ArrayLike<number>, dtype: DType, exact: boolean): void {
  const tol = exact ? { rtol: 0, atol: 0 } : toleranceFor(dtype);
  const results = ['cuda', 'cpu'].map((device) => {
    const inputs = build(device);
    const out = run(inputs);
    expect(out.device).toBe(device);
    const values = out.toFloat64Array();
    out.dispose();
    for (const t of inputs) t.dispose();
    return values;
  });
  assertClose(results[0]!, expected, tol);
  assertClose(results[0]!, results[1]!, tol);
}

/** An int32 index tensor on `device`, dense or every other element of a wider one. */
function indexTensor(values: readonly number[], shape: readonly number[], device: string, layout: Layout): Tensor {
  return makeTensor(values, shape, 'int32', device, layout);
}

/** Seeded indices in [0, size). */
function randomIndices(n: number, size: number, seed: number): number[] {
  return Array.from(valuesFor('float64', n, seed, 0, size), (v) => Math.min(size - 1, Math.floor(v)));
}

describe.skipIf(!cudaAvailable())('indexSelect and gather on cuda', () => {
  it('indexSelect: every dtype, axis and layout, with repeats and an empty index', () => {
    for (const dtype of ALL_DTYPES) {
      const values = roundTo(valuesFor(dtype, sizeOf(SHAPE), 7), dtype);
      for (let axis = 0; axis < 3; axis++) {
        const size = SHAPE[axis]!;
        for (const index of [[size - 1, 0, 2, 0, 1], [], [1]]) {
          for (const layout of LAYOUTS) {
            const outShape = [...SHAPE];
            outShape[axis] = index.length;
            const expected = Array.from({ length: sizeOf(outShape) }, (_, i) => {
              const c = coordsOf(i, outShape);
              c[axis] = index[c[axis]!]!;
              return values[flatOf(c, SHAPE)]!;
            });
            checkBoth(
              (d) => [makeTensor(values, SHAPE, dtype, d, layout), indexTensor(index, [index.length], d, layout === 'strided' ? 'strided' : 'contiguous')],
              ([x, idx]) => indexSelect(x!, axis, idx!), expected, dtype, true);
          }
        }
      }
    }
  });

  it('gather: index smaller than x on the other dims, any layout', () => {
    for (const dtype of ALL_DTYPES) {
      const values = roundTo(valuesFor(dtype, sizeOf(SHAPE), 8), dtype);
      for (let axis = 0; axis < 3; axis++) {
        const indexShape = [3, 6, 4];
        const index = randomIndices(sizeOf(indexShape), SHAPE[axis]!, axis + 1);
        const expected = index.map((v, i) => {
          const c = coordsOf(i, indexShape);
          c[axis] = v;
          return values[flatOf(c, SHAPE)]!;
        });
        for (const layout of LAYOUTS) {
          checkBoth((d) => [makeTensor(values, SHAPE, dtype, d, layout), indexTensor(index, indexShape, d, layout)],
            ([x, idx]) => gather(x!, axis, idx!), expected, dtype, true);
        }
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('scatterAdd and indexAdd on cuda', () => {
  /** The float64 sum a target receives, stored the way `dtype` stores it. */
  const finish = (v: number, dtype: DType) => (isInt(dtype) ? wrapInt(v, dtype) : v);

  it('scatterAdd: repeated targets accumulate; integers wrap; 16-bit floats accumulate in float32', () => {
    for (const dtype of ALL_DTYPES) {
      const xs = roundTo(valuesFor(dtype, sizeOf(SHAPE), 9), dtype);
      const srcShape = [4, 7, 6];
      const src = roundTo(valuesFor(dtype, sizeOf(srcShape), 10), dtype);
      for (let axis = 0; axis < 3; axis++) {
        const indexShape = [3, 7, 4];
        const index = randomIndices(sizeOf(indexShape), SHAPE[axis]!, 20 + axis);
        const sums = Array.from(xs);
        index.forEach((v, i) => {
          const c = coordsOf(i, indexShape);
          const from = src[flatOf(c, srcShape)]!;
          c[axis] = v;
          sums[flatOf(c, SHAPE)]! += from;
        });
        const expected = roundTo(sums.map((v) => finish(v, dtype)), dtype);
        for (const layout of LAYOUTS) {
          checkBoth(
            (d) => [makeTensor(xs, SHAPE, dtype, d, layout), indexTensor(index, indexShape, d, layout), makeTensor(src, srcShape, dtype, d, layout)],
            ([x, idx, s]) => scatterAdd(x!, axis, idx!, s!), expected, dtype, isInt(dtype));
        }
      }
    }
  });

  it('indexAdd: slices added at repeated indices; an empty index returns x', () => {
    for (const dtype of ALL_DTYPES) {
      const xs = roundTo(valuesFor(dtype, sizeOf(SHAPE), 11), dtype);
      for (let axis = 0; axis < 3; axis++) {
        for (const index of [[0, SHAPE[axis]! - 1, 0, 1, 0], []]) {
          const srcShape = [...SHAPE];
          srcShape[axis] = index.length;
          const src = roundTo(valuesFor(dtype, sizeOf(srcShape), 12 + axis), dtype);
          const sums = Array.from(xs);
          for (let i = 0; i < src.length; i++) {
            const c = coordsOf(i, srcShape);
            c[axis] = index[c[axis]!]!;
            sums[flatOf(c, SHAPE)]! += src[i]!;
          }
          const expected = roundTo(sums.map((v) => finish(v, dtype)), dtype);
          for (const layout of LAYOUTS) {
            checkBoth(
              (d) => [makeTensor(xs, SHAPE, dtype, d, layout), indexTensor(index, [index.length], d, 'contiguous'), makeTensor(src, srcShape, dtype, d, layout)],
              ([x, idx, s]) => indexAdd(x!, axis, idx!, s!), expected, dtype, isInt(dtype));
          }
        }
      }
    }
  });

  it('an embedding-sized indexAdd (many repeats into few rows) matches the float64 sum', () => {
    const rows = 5;
    const width = 33;
    const n = 3000;
    const index = randomIndices(n, rows, 3);
    const src = roundTo(valuesFor('float32', n * width, 4), 'float32');
    const sums = new Float64Array(rows * width);
    index.forEach((r, i) => {
      for (let j = 0; j < width; j++) sums[r * width + j]! += src[i * width + j]!;
    });
    const zeros = new Float64Array(rows * width);
    const build = (d: string) => [makeTensor(zeros, [rows, width], 'float32', d, 'contiguous'), indexTensor(index, [n], d, 'contiguous'), makeTensor(src, [n, width], 'float32', d, 'contiguous')];
    const inputs = build('cuda');
    const out = indexAdd(inputs[0]!, 0, inputs[1]!, inputs[2]!);
    assertClose(out.toFloat64Array(), sums, { rtol: 1e-5, atol: 1e-4 });
    out.dispose();
    for (const t of inputs) t.dispose();
  });
});

// cat, repeatInterleave and avgPool1d on cuda: every dtype they take, every axis, dense /
// strided / transposed / unaligned inputs and empty pieces, against plain-loop references and
// the CPU; the vectorized kernels of the adapters' pooling maps and their gradients.
import { avgPool1d, avgPool1dBackward, cat, div, empty, narrow, repeatInterleave, reshape, sumRuns, tensor, type DType, type Tensor } from '@blora/tensor';
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { avgPool1dBackwardInto, cudaAvailable, sumRunsInto } from '@blora/cuda-kernels';
import { ALL_DTYPES, FLOAT_DTYPES, LAYOUTS, makeTensor, roundTo, sizeOf, toleranceFor, valuesFor, type Layout } from './helpers.js';

/** Runs `run` on cuda and on the CPU from the same inputs and checks both against `expected`. */
function checkBoth(build: (device: string) => Tensor[], run: (inputs: Tensor[]) => Tensor, expected: ArrayLike<number>, tol: Tolerance): void {
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

const EXACT = { rtol: 0, atol: 0 };

describe.skipIf(!cudaAvailable())('cat on cuda', () => {
  it('joins pieces of different sizes (one empty) along every axis, any layout, bit-exact', () => {
    for (const dtype of ALL_DTYPES) {
      for (let axis = 0; axis < 3; axis++) {
        const sizes = [3, 0, 1, 5];
        const shapes = sizes.map((s) => {
          const shape = [2, 4, 6];
          shape[axis] = s;
          return shape;
        });
        const pieces = shapes.map((shape, i) => roundTo(valuesFor(dtype, sizeOf(shape), 30 + i), dtype));
        const outShape = [2, 4, 6];
        outShape[axis] = sizes.reduce((p, s) => p + s, 0);
        // Reference: walk the output, find which piece each position along the axis belongs to.
        const expected: number[] = [];
        const [d0, d1, d2] = outShape as [number, number, number];
        for (let i = 0; i < d0; i++) {
          for (let j = 0; j < d1; j++) {
            for (let k = 0; k < d2; k++) {
              const c = [i, j, k];
              let along = c[axis]!;
              let piece = 0;
              while (along >= sizes[piece]!) along -= sizes[piece++]!;
              c[axis] = along;
              const s = shapes[piece]!;
              expected.push(pieces[piece]![(c[0]! * s[1]! + c[1]!) * s[2]! + c[2]!]!);
            }
          }
        }
        for (const layout of LAYOUTS) {
          checkBoth((d) => shapes.map((s, i) => makeTensor(pieces[i]!, s, dtype, d, i % 2 === 0 ? layout : 'contiguous')),
            (ts) => cat(ts, axis), expected, EXACT);
        }
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('repeatInterleave on cuda', () => {
  it('repeats each element in place along every axis, repeats 0, 1 and 3, bit-exact', () => {
    const shape = [3, 4, 5];
    for (const dtype of ALL_DTYPES) {
      const values = roundTo(valuesFor(dtype, sizeOf(shape), 40), dtype);
      for (let axis = 0; axis < 3; axis++) {
        for (const repeats of [0, 1, 3]) {
          const outShape = [...shape];
          outShape[axis]! *= repeats;
          const expected: number[] = [];
          for (let i = 0; i < outShape[0]!; i++) {
            for (let j = 0; j < outShape[1]!; j++) {
              for (let k = 0; k < outShape[2]!; k++) {
                const c = [i, j, k];
                c[axis] = Math.floor(c[axis]! / repeats);
                expected.push(values[(c[0]! * shape[1]! + c[1]!) * shape[2]! + c[2]!]!);
              }
            }
          }
          for (const layout of LAYOUTS) {
            checkBoth((d) => [makeTensor(values, shape, dtype, d, layout)], ([x]) => repeatInterleave(x!, repeats, axis), expected, EXACT);
          }
        }
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('avgPool1d on cuda', () => {
  function check(dtype: DType, shape: number[], kernel: number, layout: Layout): void {
    const values = roundTo(valuesFor(dtype, sizeOf(shape), 50 + kernel), dtype);
    const last = shape[shape.length - 1]!;
    const expected: number[] = [];
    for (let start = 0; start < values.length; start += kernel) {
      let sum = 0;
      for (let j = 0; j < kernel; j++) sum += values[start + j]!;
      expected.push(sum / kernel);
    }
    expect(expected.length * kernel).toBe(sizeOf(shape));
    expect(last % kernel).toBe(0);
    checkBoth((d) => [makeTensor(values, shape, dtype, d, layout)], ([x]) => avgPool1d(x!, kernel), roundTo(expected, dtype), toleranceFor(dtype));
  }

  it('averages runs of the last dim for every float dtype, kernel and layout', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const kernel of [1, 2, 3, 12]) {
        for (const layout of LAYOUTS) {
          check(dtype, [5, 12], kernel, layout);
          check(dtype, [2, 3, 12], kernel, layout);
        }
      }
      check(dtype, [0, 6], 3, 'contiguous');
    }
  });

  it('the mean of equal values is exact', () => {
    const x = makeTensor(new Float64Array(30).fill(0.1), [5, 6], 'float32', 'cuda', 'contiguous');
    const y = avgPool1d(x, 3);
    expect(Array.from(y.toFloat64Array())).toEqual(new Array(10).fill(Math.fround(0.1)));
    x.dispose();
    y.dispose();
  });
});

/** `values` on cuda as a contiguous tensor whose first element is not 16-byte aligned (a narrow of a longer one). */
function unalignedTensor(values: ArrayLike<number>, shape: number[], dtype: DType): Tensor {
  const padded = new Float64Array(values.length + 1);
  padded.set(Float64Array.from(values), 1);
  const base = tensor(padded, { dtype, device: 'cuda' });
  const view = reshape(narrow(base, 0, 1, values.length), shape);
  base.dispose();
  return view;
}

describe.skipIf(!cudaAvailable())('vectorized pooling kernels on cuda', () => {
  it('avgPool1d: runs shorter and longer than a 16-byte vector, aligned and unaligned starts', () => {
    const shape = [5, 48];
    for (const dtype of FLOAT_DTYPES) {
      for (const kernel of [2, 4, 8, 16, 48]) {
        const values = roundTo(valuesFor(dtype, sizeOf(shape), 60 + kernel), dtype);
        const expected: number[] = [];
        for (let start = 0; start < values.length; start += kernel) {
          let sum = 0;
          for (let j = 0; j < kernel; j++) sum += values[start + j]!;
          expected.push(sum / kernel);
        }
        const rounded = roundTo(expected, dtype);
        checkBoth((d) => [makeTensor(values, shape, dtype, d, 'contiguous')], ([x]) => avgPool1d(x!, kernel), rounded, toleranceFor(dtype));
        const x = unalignedTensor(values, shape, dtype);
        const y = avgPool1d(x, kernel);
        assertClose(y.toFloat64Array(), rounded, toleranceFor(dtype));
        for (const t of [x, y]) t.dispose();
      }
    }
  });

  it('repeatInterleave: whole-vector inner blocks and the last axis with a tail, bit-exact', () => {
    const shape = [3, 2, 16];
    for (const dtype of ALL_DTYPES) {
      const values = roundTo(valuesFor(dtype, sizeOf(shape), 70), dtype);
      for (let axis = 0; axis < 3; axis++) {
        const repeats = 3;
        const outShape = [...shape];
        outShape[axis]! *= repeats;
        const expected: number[] = [];
        for (let i = 0; i < outShape[0]!; i++) {
          for (let j = 0; j < outShape[1]!; j++) {
            for (let k = 0; k < outShape[2]!; k++) {
              const c = [i, j, k];
              c[axis] = Math.floor(c[axis]! / repeats);
              expected.push(values[(c[0]! * shape[1]! + c[1]!) * shape[2]! + c[2]!]!);
            }
          }
        }
        checkBoth((d) => [makeTensor(values, shape, dtype, d, 'contiguous')], ([x]) => repeatInterleave(x!, repeats, axis), expected, EXACT);
        const x = unalignedTensor(values, shape, dtype);
        const y = repeatInterleave(x, repeats, axis);
        expect(Array.from(y.toFloat64Array())).toEqual(expected);
        for (const t of [x, y]) t.dispose();
      }
    }
  });

  it('avgPool1dBackward equals div(repeatInterleave(dy), kernel) of the CPU bit for bit', () => {
    for (const dtype of FLOAT_DTYPES) {
      // Ragged sizes take the general kernel; whole vectors with a kernel of 2, 4 or 8 the one
      // that reads each thread's gradient elements with one load.
      for (const [shape, kernel] of [[[3, 7], 2], [[4, 5], 3], [[2, 9], 8], [[1, 3], 1], [[3, 64], 2], [[5, 40], 4], [[2, 32], 8]] as [number[], number][]) {
        const values = roundTo(valuesFor(dtype, sizeOf(shape), 80 + kernel), dtype);
        const dy = makeTensor(values, shape, dtype, 'cuda', 'contiguous');
        const outShape = [...shape.slice(0, -1), shape[shape.length - 1]! * kernel];
        const dx = empty(outShape, { dtype, device: 'cuda' });
        avgPool1dBackwardInto(dy, dx, kernel);
        const cpuDy = makeTensor(values, shape, dtype, 'cpu', 'contiguous');
        const cpu = div(repeatInterleave(cpuDy, kernel, -1), kernel);
        expect(Array.from(dx.toTypedArray())).toEqual(Array.from(cpu.toTypedArray()));
        const reference = Array.from({ length: values.length * kernel }, (_, i) => values[Math.floor(i / kernel)]! / kernel);
        assertClose(dx.toFloat64Array(), roundTo(reference, dtype), toleranceFor(dtype));
        for (const t of [dy, dx, cpuDy, cpu]) t.dispose();
      }
    }
  });

  it('avgPool1dBackward reads a gradient that starts off its load alignment (general kernel)', () => {
    for (const dtype of FLOAT_DTYPES) {
      const values = roundTo(valuesFor(dtype, 65, 91), dtype);
      const whole = makeTensor(values, [65], dtype, 'cuda', 'contiguous');
      const dy = narrow(whole, 0, 1, 64);  // one element in: not aligned to a vector of gradient elements
      for (const kernel of [2, 4]) {
        const dx = empty([64 * kernel], { dtype, device: 'cuda' });
        avgPool1dBackwardInto(dy, dx, kernel);
        const expected = roundTo(Array.from({ length: 64 * kernel }, (_, i) => values[1 + Math.floor(i / kernel)]! / kernel), dtype);
        expect(Array.from(dx.toFloat64Array())).toEqual(Array.from(expected));
        dx.dispose();
      }
      dy.dispose();
      whole.dispose();
    }
  });

  it('sumRuns adds each run of the last dim (the gradient of repeatInterleave), any layout', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const kernel of [1, 2, 3, 8]) {
        const shape = [3, 8 * 3];
        const values = roundTo(valuesFor(dtype, sizeOf(shape), 90 + kernel), dtype);
        const expected: number[] = [];
        for (let start = 0; start < values.length; start += kernel) {
          let sum = 0;
          for (let j = 0; j < kernel; j++) sum += values[start + j]!;
          expected.push(sum);
        }
        for (const layout of LAYOUTS) {
          const x = makeTensor(values, shape, dtype, 'cuda', layout);
          const out = empty([3, 24 / kernel], { dtype, device: 'cuda' });
          sumRunsInto(x, out, kernel);
          assertClose(out.toFloat64Array(), roundTo(expected, dtype), toleranceFor(dtype));
          for (const t of [x, out]) t.dispose();
        }
      }
    }
  });

  it('the avgPool1dBackward and sumRuns ops (what the autograd rules call) match the CPU on every layout', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const layout of LAYOUTS) {
        const shape = [4, 12];
        const values = roundTo(valuesFor(dtype, sizeOf(shape), 120), dtype);
        for (const kernel of [2, 3]) {
          checkBoth((device) => [makeTensor(values, shape, dtype, device, layout)], ([x]) => sumRuns(x!, kernel),
            Array.from({ length: values.length / kernel }, (_, o) => values.slice(o * kernel, (o + 1) * kernel).reduce((a, b) => a + b, 0)),
            toleranceFor(dtype));
          checkBoth((device) => [makeTensor(values, shape, dtype, device, layout)], ([dy]) => avgPool1dBackward(dy!, kernel),
            roundTo(Array.from({ length: values.length * kernel }, (_, i) => values[Math.floor(i / kernel)]! / kernel), dtype), toleranceFor(dtype));
        }
      }
    }
  });

  it('the pooling entry points reject mismatched shapes', () => {
    const dy = empty([2, 3], { dtype: 'float32', device: 'cuda' });
    const dx = empty([2, 5], { dtype: 'float32', device: 'cuda' });
    expect(() => avgPool1dBackwardInto(dy, dx, 2)).toThrow(/avgPool1dBackward: cannot spread/);
    expect(() => sumRunsInto(dx, dy, 2)).toThrow(/sumRuns: cannot pool/);
    for (const t of [dy, dx]) t.dispose();
  });
});

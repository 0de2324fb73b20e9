// The 16-byte vector paths of copy, fill, cast, unary, binary and isFinite on dense inputs,
// against the CPU backend: lengths around the vector width, lengths large enough for several
// vectors per thread, first elements off the 16-byte grid (slices), operands whose offsets
// differ (the strided fallback), broadcast scalars, sizes that take the launch of small blocks
// (a decoding token's activations) and cat into slices of its output.
import {
  cat, execute1, expand, isFloatDType, narrow, reshape, tensor, tidy, type Attrs, type DType, type Tensor,
} from '@blora/tensor';
import { assertClose } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, toleranceFor, valuesFor } from './helpers.js';

/** Lengths on both sides of the vector widths (2..16 elements) and a few whole waves. */
const LENGTHS = [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 1023, 4099];
/** Enough elements that every thread of a full grid handles several vectors. */
const LARGE = 5_000_003;
const OFFSETS = [0, 1, 3, 8];

/** `values` placed `offset` elements into a 1-D buffer (other elements 77), as a [n] view. */
function flatView(values: Float64Array, dtype: DType, device: string, offset: number): Tensor {
  return tidy(() => {
    const stored = new Float64Array(offset + values.length + 5).fill(77);
    stored.set(values, offset);
    return narrow(tensor(stored, { dtype, device }), 0, offset, values.length);
  });
}

/** Positions where two host copies differ (NaN bit patterns compare as stored). */
function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  let bad = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) bad++;
  return bad;
}

/** Runs `op` on cuda and on the CPU with the same inputs and compares (bit-exact when `exact`). */
function sameAsCpu(op: string, make: (device: string) => Tensor[], dtype: DType, attrs: Attrs = {}, exact = false): void {
  const [gpuIn, cpuIn] = [make('cuda'), make('cpu')];
  const shape = gpuIn.length > 0 ? gpuIn[gpuIn.length - 1]!.shape : [];
  const gpu = execute1(op, gpuIn, shape, dtype, attrs, 'cuda');
  const cpu = execute1(op, cpuIn, shape, dtype, attrs, 'cpu');
  try {
    if (exact) expect(mismatches(gpu.toTypedArray(), cpu.toTypedArray())).toBe(0);
    else assertClose(gpu.toFloat64Array(), cpu.toFloat64Array(), toleranceFor(dtype));
  } finally {
    for (const t of [...gpuIn, ...cpuIn, gpu, cpu]) t.dispose();
  }
}

describe.skipIf(!cudaAvailable())('dense vector paths on cuda', () => {
  it('copy every dtype bit-exactly at every length and misaligned offset', () => {
    for (const dtype of ALL_DTYPES) {
      for (const n of LENGTHS) {
        for (const offset of OFFSETS) {
          const values = valuesFor(dtype, n, n + offset);
          sameAsCpu('copy', (d) => [flatView(values, dtype, d, offset)], dtype, {}, true);
        }
      }
    }
    for (const dtype of ['float32', 'bfloat16', 'uint8'] as DType[]) {
      for (const offset of [0, 1]) sameAsCpu('copy', (d) => [flatView(valuesFor(dtype, LARGE, 5), dtype, d, offset)], dtype, {}, true);
    }
  });

  it('fill long outputs of every width', () => {
    for (const dtype of ALL_DTYPES) {
      for (const n of [17, 4099, LARGE]) {
        const value = isFloatDType(dtype) ? -2.5 : 113;
        const out = execute1('fill', [], [n], dtype, { value }, 'cuda');
        const got = out.toFloat64Array();
        out.dispose();
        let bad = 0;
        for (let i = 0; i < n; i++) if (got[i] !== value) bad++;
        expect(bad).toBe(0);
      }
    }
  });

  it('cast between widths on dense misaligned inputs', () => {
    const pairs: [DType, DType][] = [
      ['float32', 'bfloat16'], ['bfloat16', 'float32'], ['float16', 'float64'], ['float64', 'int8'], ['uint8', 'float16'],
      ['int32', 'float32'], ['int8', 'float64'],
    ];
    for (const [from, to] of pairs) {
      for (const n of [...LENGTHS, LARGE]) {
        for (const offset of n === LARGE ? [1] : OFFSETS) {
          const values = valuesFor(from, n, n + 2, -300, 300);
          sameAsCpu('cast', (d) => [flatView(values, from, d, offset)], to, { dtype: to }, true);
        }
      }
    }
  });

  it('unary ops and isFinite on dense misaligned inputs', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const n of [...LENGTHS, ...(dtype === 'float32' || dtype === 'bfloat16' ? [LARGE] : [])]) {
        for (const offset of n === LARGE ? [0, 3] : OFFSETS) {
          const values = valuesFor(dtype, n, n * 3 + offset, -4, 4);
          for (const op of n === LARGE ? ['exp'] : ['exp', 'neg', 'relu', 'silu']) sameAsCpu(op, (d) => [flatView(values, dtype, d, offset)], dtype);
          const special = Float64Array.from(values, (v, i) => (i % 5 === 1 ? NaN : i % 7 === 2 ? -Infinity : v));
          sameAsCpu('isFinite', (d) => [flatView(special, dtype, d, offset)], 'uint8', {}, true);
        }
      }
    }
    for (const dtype of INT_DTYPES) {
      sameAsCpu('neg', (d) => [flatView(valuesFor(dtype, 4099, 9), dtype, d, 1)], dtype, {}, true);
    }
  });

  it('binary ops with equal and unequal misalignment, and with broadcast scalars', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const n of [...LENGTHS, ...(dtype === 'float32' || dtype === 'bfloat16' ? [LARGE] : [])]) {
        const a = valuesFor(dtype, n, n + 11, -3, 3);
        const b = valuesFor(dtype, n, n + 12, 0.5, 3);
        const offsetPairs: [number, number][] = n === LARGE ? [[0, 0], [5, 5], [1, 2]] : [[0, 0], [3, 3], [8, 0], [1, 2]];
        for (const [oa, ob] of offsetPairs) {
          for (const op of n === LARGE ? ['add'] : ['add', 'mul', 'div', 'maximum']) {
            sameAsCpu(op, (d) => [flatView(a, dtype, d, oa), flatView(b, dtype, d, ob)], dtype);
          }
        }
        // One operand a broadcast scalar (stride 0) on either side.
        const scalar = (d: string) => tidy(() => expand(tensor([1.75], { dtype, device: d }), [n]));
        sameAsCpu('sub', (d) => [flatView(a, dtype, d, 1), scalar(d)], dtype);
        sameAsCpu('sub', (d) => [scalar(d), flatView(a, dtype, d, 0)], dtype);
      }
    }
    for (const dtype of INT_DTYPES) {
      const [a, b] = [valuesFor(dtype, 4099, 1), valuesFor(dtype, 4099, 2)];
      for (const [oa, ob] of [[0, 0], [3, 3], [1, 2]]) {
        for (const op of ['add', 'mul', 'minimum']) {
          sameAsCpu(op, (d) => [flatView(a, dtype, d, oa!), flatView(b, dtype, d, ob!)], dtype, {}, true);
        }
      }
    }
  });

  it('one decoding token\'s activations and mid sizes (the launch of small blocks, a vector each), against the CPU', () => {
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      for (const n of [4096, 11008, 300_007]) {
        const a = valuesFor(dtype, n, n + 21, -6, 6);
        const b = valuesFor(dtype, n, n + 22, -2, 2);
        for (const offset of [0, 3]) {
          sameAsCpu('siluMul', (d) => [flatView(a, dtype, d, offset), flatView(b, dtype, d, offset)], dtype);
          sameAsCpu('add', (d) => [flatView(a, dtype, d, offset), flatView(b, dtype, d, offset)], dtype);
          sameAsCpu('silu', (d) => [flatView(a, dtype, d, offset)], dtype);
        }
      }
    }
  });

  it('cat along the first axis copies each part into its dense slice', () => {
    for (const dtype of ['float32', 'bfloat16', 'int8'] as DType[]) {
      const parts = [[3, 17], [1, 17], [5, 17]].map((shape, i) => valuesFor(dtype, shape[0]! * 17, 30 + i));
      const build = (d: string) => parts.map((v) => reshape(tensor(v, { dtype, device: d }), [v.length / 17, 17]));
      const [gpuParts, cpuParts] = [build('cuda'), build('cpu')];
      const gpu = cat(gpuParts, 0);
      const cpu = cat(cpuParts, 0);
      expect(Array.from(gpu.toTypedArray())).toEqual(Array.from(cpu.toTypedArray()));
      for (const t of [...gpuParts, ...cpuParts, gpu, cpu]) t.dispose();
    }
  });
});

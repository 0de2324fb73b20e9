// Helpers for the elementwise tests: inputs in several memory layouts whose row-major values
// are known independently of the library's strided reads, and plain-loop float64 references.
import { expand, slice, tensor, transpose, type DType, type Tensor } from '../src/index.js';
import { nonContiguousTensor, randomValues, type Tolerance } from '../src/testing.js';

/** The float dtypes, all supported by every elementwise float op. */
export const FLOAT_DTYPES = ['float64', 'float32', 'bfloat16', 'float16'] as const;
/** The integer dtypes. */
export const INT_DTYPES = ['int32', 'int8', 'uint8'] as const;

/** Tolerance of one correctly rounded (or twice rounded, for 16-bit types) result per dtype. */
export const TOL: Record<DType, Tolerance> = {
  float64: { rtol: 1e-15, atol: 0 },
  float32: { rtol: 2 ** -23, atol: 2 ** -149 },
  bfloat16: { rtol: 2 ** -8, atol: 2 ** -133 },
  float16: { rtol: 2 ** -10, atol: 2 ** -24 },
  int32: { rtol: 0, atol: 0 },
  int8: { rtol: 0, atol: 0 },
  uint8: { rtol: 0, atol: 0 },
};

/** Element count of a shape, with a plain loop. */
export function count(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Seeded values suited to `dtype`: integers (floored) for integer dtypes. */
export function valuesFor(n: number, dtype: DType, seed: number, low: number, high: number): Float64Array {
  const v = randomValues(n, seed, low, high);
  return dtype === 'int32' || dtype === 'int8' || dtype === 'uint8' ? v.map(Math.floor) : v;
}

/** One input tensor and its row-major values. */
export interface InputCase {
  layout: string;
  x: Tensor;
  values: Float64Array;
}

/**
 * The same logical tensor in several layouts: contiguous, strided (every other element),
 * transposed, at a nonzero storage offset, and broadcast (a stride-0 expand of the first row).
 * `values` are the exact stored values (already rounded to `dtype`), read from a contiguous tensor.
 */
export function inputCases(shape: readonly number[], dtype: DType, raw: ArrayLike<number>): InputCase[] {
  const base = tensor(Float64Array.from(raw), { shape, dtype });
  const values = base.toFloat64Array();
  const cases: InputCase[] = [
    { layout: 'contiguous', x: base, values },
    { layout: 'strided', x: nonContiguousTensor(values, shape, dtype), values },
  ];
  const rank = shape.length;
  if (rank >= 2) {
    // Store the transpose of the last two dims, then transpose back as a view.
    const rows = shape[rank - 2]!;
    const cols = shape[rank - 1]!;
    const swapped = new Float64Array(values.length);
    const mat = rows * cols;
    for (let b = 0; b < values.length / Math.max(mat, 1); b++) {
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) swapped[b * mat + j * rows + i] = values[b * mat + i * cols + j]!;
    }
    const stored = tensor(swapped, { shape: [...shape.slice(0, -2), cols, rows], dtype });
    cases.push({ layout: 'transposed', x: transpose(stored), values });
  }
  if (rank >= 1) {
    // A leading padding row moves the values to a nonzero offset.
    const rowSize = count(shape.slice(1));
    const padded = new Float64Array(values.length + rowSize).fill(7);
    padded.set(values, rowSize);
    const big = tensor(padded, { shape: [shape[0]! + 1, ...shape.slice(1)], dtype });
    cases.push({ layout: 'offset', x: slice(big, 0, 1), values });
  }
  if (rank >= 1 && shape[0]! > 1) {
    const rowSize = count(shape.slice(1));
    const row = values.slice(0, rowSize);
    const repeated = new Float64Array(values.length);
    for (let r = 0; r < shape[0]!; r++) repeated.set(row, r * rowSize);
    const x = expand(tensor(row, { shape: [1, ...shape.slice(1)], dtype }), shape);
    cases.push({ layout: 'broadcast', x, values: repeated });
  }
  return cases;
}

/** NumPy broadcast of two shapes, written independently of the library. */
export function broadcastShapeRef(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[i - (rank - a.length)] ?? 1;
    const db = b[i - (rank - b.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`test: shapes do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** The row-major index into an operand of `shape` for each element of the broadcast `out` shape. */
export function broadcastIndex(shape: readonly number[], out: readonly number[]): number[] {
  const total = count(out);
  const lead = out.length - shape.length;
  const idx: number[] = [];
  for (let flat = 0; flat < total; flat++) {
    let rem = flat;
    let src = 0;
    let mul = 1;
    for (let d = out.length - 1; d >= 0; d--) {
      const coord = rem % out[d]!;
      rem = Math.floor(rem / out[d]!);
      if (d >= lead) {
        const size = shape[d - lead]!;
        src += (size === 1 ? 0 : coord) * mul;
        mul *= size;
      }
    }
    idx.push(src);
  }
  return idx;
}

/** f applied to every pair of the broadcast operands, in float64. */
export function binaryRef(
  a: ArrayLike<number>, aShape: readonly number[],
  b: ArrayLike<number>, bShape: readonly number[],
  f: (x: number, y: number) => number,
): { shape: number[]; values: Float64Array } {
  const shape = broadcastShapeRef(aShape, bShape);
  const ia = broadcastIndex(aShape, shape);
  const ib = broadcastIndex(bShape, shape);
  const values = new Float64Array(ia.length);
  for (let i = 0; i < ia.length; i++) values[i] = f(a[ia[i]!]!, b[ib[i]!]!);
  return { shape, values };
}

/** Wraps an exact integer result into `dtype` like two's complement storage, via BigInt. */
export function wrapInt(value: bigint, dtype: 'int32' | 'int8' | 'uint8'): number {
  if (dtype === 'int32') return Number(BigInt.asIntN(32, value));
  if (dtype === 'int8') return Number(BigInt.asIntN(8, value));
  return Number(BigInt.asUintN(8, value));
}

/** The value range of an integer dtype, written out for the tests. */
export const INT_RANGE = { int32: [-(2 ** 31), 2 ** 31 - 1], int8: [-128, 127], uint8: [0, 255] } as const;

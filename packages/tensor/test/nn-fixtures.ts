// Shared fixtures of the fused NN op tests: input layouts, op-record capture, finite differences.
import { setOpObserver, tensor, transpose, type DType, type OpRecord, type Tensor } from '../src/index.js';
import { nonContiguousTensor } from '../src/testing.js';

/** How a test input is laid out in memory; the values (row-major) are the same for all. */
export type Layout = 'contiguous' | 'strided' | 'transposed';

/** Every layout, for parameterised tests. */
export const LAYOUTS: readonly Layout[] = ['contiguous', 'strided', 'transposed'];

/**
 * A tensor holding `values` (row-major for `shape`): contiguous, every other element of a wider
 * tensor, or the transpose of a tensor whose last two dims are swapped.
 */
export function buildTensor(values: ArrayLike<number>, shape: readonly number[], dtype: DType, layout: Layout): Tensor {
  if (layout === 'strided') return nonContiguousTensor(values, shape, dtype);
  if (layout === 'contiguous' || shape.length < 2) return tensor(Float64Array.from(values), { shape, dtype });
  const r = shape.length;
  const [rows, cols] = [shape[r - 2]!, shape[r - 1]!];
  const swapped = new Float64Array(values.length);
  const batch = rows * cols;
  for (let b = 0; b < values.length / Math.max(batch, 1); b++) {
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) swapped[b * batch + j * rows + i] = values[b * batch + i * cols + j]!;
  }
  const base = tensor(swapped, { shape: [...shape.slice(0, -2), cols, rows], dtype });
  return transpose(base, -2, -1);
}

/** Runs `fn` with an op observer installed and returns what it returned and the ops it recorded. */
export function recordOps<T>(fn: () => T): { result: T; records: OpRecord[] } {
  const records: OpRecord[] = [];
  const previous = setOpObserver((r) => records.push(r));
  try {
    return { result: fn(), records };
  } finally {
    setOpObserver(previous);
  }
}

/** The last record of `op` among `records`; throws when there is none. */
export function lastRecord(records: readonly OpRecord[], op: string): OpRecord {
  const found = records.filter((r) => r.op === op);
  if (found.length === 0) throw new Error(`no '${op}' op was recorded (got ${records.map((r) => r.op).join(', ')})`);
  return found[found.length - 1]!;
}

/** Central finite differences of the scalar function `f` at `x` (float64, step `h`). */
export function numericGradient(f: (x: Float64Array) => number, x: Float64Array, h = 1e-6): Float64Array {
  const grad = new Float64Array(x.length);
  const probe = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    probe[i] = x[i]! + h;
    const up = f(probe);
    probe[i] = x[i]! - h;
    const down = f(probe);
    probe[i] = x[i]!;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

/** sum_i a_i b_i in float64. */
export function dotProduct(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Tolerances for comparing a kernel in `dtype` against a float64 reference of order-1 values. */
export function toleranceFor(dtype: DType): { rtol: number; atol: number } {
  switch (dtype) {
    case 'float64': return { rtol: 1e-9, atol: 1e-10 };
    case 'float32': return { rtol: 1e-4, atol: 1e-5 };
    case 'float16': return { rtol: 5e-3, atol: 5e-3 };
    default: return { rtol: 3e-2, atol: 3e-2 };
  }
}

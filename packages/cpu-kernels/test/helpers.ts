// Shared test helpers: the kernel configurations every test runs under, and float64
// references written with plain loops.
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import type { Tensor } from '@blora/tensor';
import { configureCpuKernels, cpuKernelsInfo, type CpuKernelsOptions } from '../src/index.js';

/** True when the compiled addon is loaded (tests that need it use describe.skipIf(!NATIVE)). */
export const NATIVE = cpuKernelsInfo().native;

const defaults = cpuKernelsInfo();

/** The instruction sets this machine runs, as configureCpuKernels names them. */
export const ISAS: readonly ('avx512' | 'avx2' | 'scalar')[] = defaults.native
  ? defaults.supported.map((isa) => (isa === 'avx2+fma' ? 'avx2' : isa))
  : [];

/**
 * Configurations to check results under: every instruction set the machine runs, each at the
 * default thread count and one other (1 thread, or more threads than cores), when native;
 * the TypeScript kernels otherwise.
 */
export const MODES: readonly CpuKernelsOptions[] = NATIVE
  ? ISAS.flatMap((isa, i): CpuKernelsOptions[] => (isa === 'scalar'
    ? [{ isa, threads: 2 }]
    : [{ isa }, { isa, threads: i === 0 ? 3 : 1 }]))
  : [{}];

/** Runs `check` under every mode, naming the mode in a failure, then restores the default configuration. */
export function inEveryMode(check: () => void): void {
  try {
    for (const mode of MODES) {
      if (NATIVE) configureCpuKernels({ isa: 'auto', threads: 0, ...mode });
      try {
        check();
      } catch (e) {
        throw new Error(`[${JSON.stringify(mode)}] ${(e as Error).message}`);
      }
    }
  } finally {
    if (NATIVE && defaults.native) configureCpuKernels({ isa: 'auto', threads: defaults.threads });
  }
}

/** assertClose that disposes `actual` afterwards. */
export function expectClose(actual: Tensor, expected: ArrayLike<number>, tol?: Tolerance): void {
  try {
    assertClose(actual, expected, tol);
  } finally {
    actual.dispose();
  }
}

/** Row-major strides of `shape`. */
function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

/**
 * Float64 reference of a batched matrix product with NumPy broadcasting of the batch dims.
 * `a` holds [...batchA, m, k] and `b` [...batchB, k, n] values in row-major order.
 */
export function matmulReference(a: ArrayLike<number>, aShape: readonly number[], b: ArrayLike<number>, bShape: readonly number[]): Float64Array {
  const m = aShape[aShape.length - 2]!;
  const k = aShape[aShape.length - 1]!;
  const n = bShape[bShape.length - 1]!;
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const rank = Math.max(aBatch.length, bBatch.length);
  const batch: number[] = [];
  for (let d = 0; d < rank; d++) {
    const da = aBatch[aBatch.length - rank + d] ?? 1;
    const db = bBatch[bBatch.length - rank + d] ?? 1;
    batch.push(Math.max(da, db));
  }
  const aStr = stridesOf(aBatch);
  const bStr = stridesOf(bBatch);
  let count = 1;
  for (const d of batch) count *= d;
  const out = new Float64Array(count * m * n);
  for (let t = 0; t < count; t++) {
    // Batch index of t, mapped to each operand (size-1 dims broadcast).
    let rest = t;
    let aItem = 0;
    let bItem = 0;
    for (let d = rank - 1; d >= 0; d--) {
      const i = rest % batch[d]!;
      rest = Math.floor(rest / batch[d]!);
      const ad = d - (rank - aBatch.length);
      const bd = d - (rank - bBatch.length);
      if (ad >= 0 && aBatch[ad] !== 1) aItem += i * aStr[ad]!;
      if (bd >= 0 && bBatch[bd] !== 1) bItem += i * bStr[bd]!;
    }
    const ao = aItem * m * k;
    const bo = bItem * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[ao + i * k + p]! * b[bo + p * n + j]!;
        out[t * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

/** Tolerance for a float32 product with shared dimension k and inputs in [-1, 1]. */
export function matmulTolerance(k: number): Tolerance {
  return { rtol: 1e-5, atol: 2e-6 * Math.max(k, 1) };
}

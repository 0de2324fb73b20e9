// Shared by the GPU tests: inputs built the same way on the CPU and on the GPU, float64
// reference helpers, dtype tolerances, and a check that runs one op on the GPU and compares
// it with a plain-loop reference and with the CPU backend's kernel.
import { execute1, findKernel, isFloatDType, slice, tensor, transpose, type Attrs, type DType, type Tensor } from '@blora/tensor';
import { assertClose, seededRandom, type Tolerance } from '@blora/tensor/testing';
import { expect } from 'vitest';

/** The floating-point dtypes. */
export const FLOAT_DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16'];
/** The integer dtypes. */
export const INT_DTYPES: readonly DType[] = ['int32', 'int8', 'uint8'];
/** Every dtype. */
export const ALL_DTYPES: readonly DType[] = [...FLOAT_DTYPES, ...INT_DTYPES];

/** True for the integer dtypes. */
export function isInt(dtype: DType): boolean {
  return INT_DTYPES.includes(dtype);
}

/** How an input is laid out: dense, every other element of a wider tensor, or a transposed view. */
export type Layout = 'contiguous' | 'strided' | 'transposed';
/** Every layout. */
export const LAYOUTS: readonly Layout[] = ['contiguous', 'strided', 'transposed'];

/** `n` seeded values suited to `dtype`: uniform in [low, high) for floats, in-range integers otherwise. */
export function valuesFor(dtype: DType, n: number, seed: number, low = -2, high = 2): Float64Array {
  const rnd = seededRandom(seed);
  const out = new Float64Array(n);
  const [lo, hi] = dtype === 'int32' ? [-1000, 1000] : dtype === 'int8' ? [-128, 128] : dtype === 'uint8' ? [0, 256] : [low, high];
  for (let i = 0; i < n; i++) {
    const v = lo + (hi - lo) * rnd();
    out[i] = isFloatDType(dtype) ? v : Math.floor(v);
  }
  return out;
}

/** `values` as `dtype` storage holds them (half types rounded, integers wrapped), decoded to float64 on the CPU. */
export function roundTo(values: ArrayLike<number>, dtype: DType): Float64Array {
  return tensor(Float64Array.from(values), { dtype }).toFloat64Array();
}

/** Wraps an exact integer result like a typed-array store of `dtype`. */
export function wrapInt(v: number, dtype: DType): number {
  const i32 = Number(BigInt.asIntN(32, BigInt(v)));
  if (dtype === 'int8') return (i32 << 24) >> 24;
  if (dtype === 'uint8') return i32 & 255;
  return i32;
}

/** A view of `base` made by `make`; the base is released so the view alone owns the memory. */
function viewOnly(base: Tensor, make: (t: Tensor) => Tensor): Tensor {
  const view = make(base);
  if (view !== base) base.dispose();
  return view;
}

/**
 * A tensor on `device` whose row-major elements are `values`, in the given memory layout.
 * 'strided' puts the values at every other position of the last dim (NaN or 99 between them,
 * so a kernel that reads a gap shows up); 'transposed' stores the last two dims swapped.
 */
export function makeTensor(values: ArrayLike<number>, shape: readonly number[], dtype: DType, device: string, layout: Layout): Tensor {
  const data = Float64Array.from(values);
  const r = shape.length;
  if (layout === 'strided' && r > 0) {
    const last = shape[r - 1]!;
    const wide = new Float64Array(data.length * 2).fill(isFloatDType(dtype) ? NaN : 99);
    for (let i = 0; i < data.length; i++) wide[2 * i] = data[i]!;
    const base = tensor(wide, { shape: [...shape.slice(0, -1), 2 * last], dtype, device });
    return viewOnly(base, (t) => slice(t, -1, 0, 2 * last, 2));
  }
  if (layout === 'transposed' && r >= 2) {
    const m = shape[r - 2]!;
    const n = shape[r - 1]!;
    const physical = new Float64Array(data.length);
    const batches = m * n === 0 ? 0 : data.length / (m * n);
    for (let b = 0; b < batches; b++) {
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) physical[b * m * n + j * m + i] = data[b * m * n + i * n + j]!;
    }
    return viewOnly(tensor(physical, { shape: [...shape.slice(0, -2), n, m], dtype, device }), (t) => transpose(t, -2, -1));
  }
  return tensor(data, { shape: [...shape], dtype, device });
}

/** Tolerance for a result of `dtype` computed from exactly represented inputs. */
export function toleranceFor(dtype: DType): Tolerance {
  switch (dtype) {
    case 'float32': return { rtol: 4e-6, atol: 1e-6 };
    case 'float64': return { rtol: 1e-12, atol: 1e-13 };
    case 'float16': return { rtol: 2e-3, atol: 1e-4 };
    case 'bfloat16': return { rtol: 1.6e-2, atol: 1e-3 };
    default: return { rtol: 0, atol: 0 };
  }
}

/** One op to check. */
export interface OpCase {
  op: string;
  /** Builds the op's inputs on `device`; called once for 'cuda' and once for 'cpu'. */
  inputs: (device: string) => Tensor[];
  shape: readonly number[];
  dtype: DType;
  attrs?: Attrs;
  /** The float64 reference of the output, row-major. */
  expected: ArrayLike<number>;
  tolerance?: Tolerance;
}

/**
 * Runs the op's cuda kernel and checks it against the reference and, when the CPU backend has
 * a kernel for the op that accepts these inputs, against the CPU result. Disposes everything.
 */
export function checkOp(c: OpCase): void {
  const tol = c.tolerance ?? toleranceFor(c.dtype);
  const cudaInputs = c.inputs('cuda');
  const out = execute1(c.op, cudaInputs, c.shape, c.dtype, c.attrs ?? {}, 'cuda');
  try {
    expect(out.device).toBe('cuda');
    const actual = out.toFloat64Array();
    assertClose(actual, c.expected, tol);
    if (findKernel(c.op, 'cpu')) {
      const cpuInputs = c.inputs('cpu');
      let cpu: Tensor | null = null;
      try {
        cpu = execute1(c.op, cpuInputs, c.shape, c.dtype, c.attrs ?? {}, 'cpu');
      } catch {
        cpu = null; // the CPU does not take these inputs; the reference check above stands
      }
      if (cpu) assertClose(actual, cpu.toFloat64Array(), tol);
      cpu?.dispose();
      for (const t of cpuInputs) t.dispose();
    }
  } finally {
    out.dispose();
    for (const t of cudaInputs) t.dispose();
  }
}

/** Row-major strides of `shape` (for references over arbitrary shapes). */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** The number of elements of `shape`. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** erf(x) by its Taylor series (accurate to ~1e-15 absolute for |x| <= 3). */
export function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

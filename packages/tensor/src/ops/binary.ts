// Elementwise binary ops with NumPy broadcasting.
//
// Both operands must have the same dtype (no implicit promotion: cast first). A number
// operand takes the tensor operand's dtype; for integer dtypes it must be an integer in range.
// On integer dtypes add, sub, mul, maximum and minimum work and wrap around like the
// dtype's storage (two's complement). div and pow are float-only and throw a TypeError that
// suggests a cast: integer division has two usual meanings (true division to a float, as in
// PyTorch, or truncation, as in C) and integer powers have no result for negative exponents,
// so the caller picks one explicitly by casting.
import { assertRepresentable, isFloatDType, type DType } from '../dtype.js';
import { execute1, runKernel } from '../dispatch.js';
import { tidy } from '../memory.js';
import { broadcastShapes } from '../shape.js';
import { Tensor } from '../tensor.js';
import type { GeluApproximation } from './unary.js';
import { expand } from './views.js';

/** A tensor operand, or a number taken in the other operand's dtype and device. */
export type Operand = Tensor | number;

/** True when `value` is a tensor of this library (also across duplicate package copies). */
export function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && (value as { isTensor?: unknown }).isTensor === true;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array (wrap it with tensor(...))';
  return typeof value;
}

/** Throws a TypeError naming `op` unless `value` is a live tensor. */
export function assertTensor(value: unknown, op: string, name = 'input'): asserts value is Tensor {
  if (!isTensor(value)) throw new TypeError(`${op}: ${name} must be a Tensor, got ${describeValue(value)}`);
  value.assertAlive(op);
}

/** Throws a TypeError naming `op` unless `value` is a live tensor or a number. */
export function assertOperand(value: unknown, op: string, name: string): asserts value is Operand {
  if (typeof value === 'number') return;
  if (!isTensor(value)) throw new TypeError(`${op}: ${name} must be a Tensor or a number, got ${describeValue(value)}`);
  value.assertAlive(op);
}

/**
 * A 0-d tensor holding the number operand `value` as `dtype` on `device`; throws naming `op`
 * when an integer dtype cannot hold it exactly. Half dtypes round it to nearest even.
 */
export function scalarOperand(op: string, value: number, dtype: DType, device: string): Tensor {
  assertRepresentable(value, dtype, `${op} (number operand for ${dtype})`);
  // Written by the fill kernel (the value is a launch argument) rather than copied from the host,
  // so that ops with number operands can be recorded in a device graph.
  const t = Tensor.empty([], dtype, device);
  runKernel('fill', device, [], [t], { value });
  return t;
}

/**
 * Validates operands, converts numbers, and broadcasts both to the common shape
 * (as zero-copy `expand` views) so kernels see equal shapes.
 */
export function prepareBinary(op: string, a: Operand, b: Operand): [Tensor, Tensor, number[]] {
  assertOperand(a, op, 'first operand');
  assertOperand(b, op, 'second operand');
  if (typeof a === 'number' && typeof b === 'number') throw new TypeError(`${op}: at least one operand must be a tensor`);
  if (isTensor(a) && isTensor(b)) {
    if (a.dtype !== b.dtype) {
      throw new TypeError(`${op}: dtypes differ (${a.describe()} and ${b.describe()}); cast one operand first`);
    }
    if (a.device !== b.device) {
      throw new Error(`${op}: operands are on different devices (${a.describe()} and ${b.describe()})`);
    }
  }
  const shape = broadcastShapes(isTensor(a) ? a.shape : [], isTensor(b) ? b.shape : [], op);
  const ref = isTensor(a) ? a : (b as Tensor);
  const ta = typeof a === 'number' ? scalarOperand(op, a, ref.dtype, ref.device) : a;
  const tb = typeof b === 'number' ? scalarOperand(op, b, ref.dtype, ref.device) : b;
  return [expand(ta, shape), expand(tb, shape), shape];
}

/** Throws a TypeError naming `op` when an operand is a tensor of an integer dtype. */
function assertFloatOperands(op: string, a: Operand, b: Operand): void {
  for (const t of [a, b]) {
    if (isTensor(t) && !isFloatDType(t.dtype)) {
      throw new TypeError(`${op}: integer tensors are not supported (got ${t.describe()}); cast to a float dtype first, e.g. cast(x, 'float32')`);
    }
  }
}

function binary(op: string, a: Operand, b: Operand): Tensor {
  // tidy frees the broadcast views and scalar operands made here; only the result survives.
  return tidy(() => {
    const [x, y, shape] = prepareBinary(op, a, b);
    return execute1(op, [x, y], shape, x.dtype);
  });
}

/** a + b, elementwise with broadcasting. Op name: `add`. */
export function add(a: Operand, b: Operand): Tensor {
  return binary('add', a, b);
}

/** a - b, elementwise with broadcasting. Op name: `sub`. */
export function sub(a: Operand, b: Operand): Tensor {
  return binary('sub', a, b);
}

/** a * b, elementwise with broadcasting (integer products wrap). Op name: `mul`. */
export function mul(a: Operand, b: Operand): Tensor {
  return binary('mul', a, b);
}

/**
 * a / b, elementwise with broadcasting (IEEE: x/0 = +-Inf, 0/0 = NaN). Float dtypes only:
 * integer tensors throw; cast them to a float dtype first. Op name: `div`.
 */
export function div(a: Operand, b: Operand): Tensor {
  assertFloatOperands('div', a, b);
  return binary('div', a, b);
}

/**
 * a ** b, elementwise with broadcasting, with the C / IEEE 754 special cases
 * (pow(1, y) = 1, pow(x, 0) = 1, pow(negative, non-integer) = NaN). Float dtypes only. Op name: `pow`.
 */
export function pow(a: Operand, b: Operand): Tensor {
  assertFloatOperands('pow', a, b);
  return binary('pow', a, b);
}

/** The larger of a and b, elementwise with broadcasting; NaN if either is NaN. Op name: `maximum`. */
export function maximum(a: Operand, b: Operand): Tensor {
  return binary('maximum', a, b);
}

/** The smaller of a and b, elementwise with broadcasting; NaN if either is NaN. Op name: `minimum`. */
export function minimum(a: Operand, b: Operand): Tensor {
  return binary('minimum', a, b);
}

/**
 * The gradient of silu at x for the output gradient dy: dy · s(x) (1 + x (1 - s(x))) with s the
 * logistic sigmoid, elementwise with broadcasting, computed in one pass and rounded once (the
 * composition of the same ops rounds after each of its five steps). At x = ±Infinity it is the
 * limit, dy · 1 or dy · 0. Float dtypes only. Op name: `siluBackward`.
 */
export function siluBackward(x: Operand, dy: Operand): Tensor {
  assertFloatOperands('siluBackward', x, dy);
  return binary('siluBackward', x, dy);
}

/**
 * The gradient of gelu at x for the output gradient dy, computed in one pass and rounded once
 * (composed of elementwise ops it takes a dozen): exact, dy · (Φ(x) + x φ(x)) with Φ and φ the
 * standard normal CDF and density (op `geluBackward`), or with `approximate` 'tanh' the derivative
 * of x σ(2u), u = sqrt(2/π) (x + 0.044715 x³) (op `geluTanhBackward`). At x = ±Infinity it is the
 * limit, dy · 1 or dy · 0. Elementwise with broadcasting, float dtypes only.
 */
export function geluBackward(x: Operand, dy: Operand, approximate: GeluApproximation = 'none'): Tensor {
  if (approximate !== 'none' && approximate !== 'tanh') {
    throw new TypeError(`geluBackward: approximate must be 'none' or 'tanh', got ${JSON.stringify(approximate)}`);
  }
  const op = approximate === 'tanh' ? 'geluTanhBackward' : 'geluBackward';
  assertFloatOperands(op, x, dy);
  return binary(op, x, dy);
}

/**
 * silu(gate) · up, elementwise with broadcasting: SwiGLU, the gated activation of LLaMA and
 * Mistral MLPs, in one pass rounded once (`mul(silu(gate), up)` rounds twice and takes two
 * kernels). At gate = -Infinity silu is -0 (its limit), so the product is ±0 for finite up. Float
 * dtypes only. Op name: `siluMul`.
 */
export function siluMul(gate: Operand, up: Operand): Tensor {
  assertFloatOperands('siluMul', gate, up);
  return binary('siluMul', gate, up);
}

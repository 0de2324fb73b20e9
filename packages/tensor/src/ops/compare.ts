// Comparisons (uint8 0/1 results, broadcasting), where (select by a uint8 condition) and clamp.
import { integerRange, type DType } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import { tidy } from '../memory.js';
import { broadcastShapes, formatShape, type Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { assertOperand, assertTensor, isTensor, prepareBinary, scalarOperand, type Operand } from './binary.js';
import { expand } from './views.js';

function compare(op: string, a: Operand, b: Operand): Tensor {
  return tidy(() => {
    const [x, y, shape] = prepareBinary(op, a, b);
    return execute1(op, [x, y], shape, 'uint8');
  });
}

/** 1 where a == b, else 0 (uint8, broadcasting; NaN equals nothing). Op name: `eq`. */
export function eq(a: Operand, b: Operand): Tensor {
  return compare('eq', a, b);
}

/** 1 where a != b, else 0 (uint8, broadcasting; NaN differs from everything). Op name: `ne`. */
export function ne(a: Operand, b: Operand): Tensor {
  return compare('ne', a, b);
}

/** 1 where a < b, else 0 (uint8, broadcasting). Op name: `lt`. */
export function lt(a: Operand, b: Operand): Tensor {
  return compare('lt', a, b);
}

/** 1 where a <= b, else 0 (uint8, broadcasting). Op name: `le`. */
export function le(a: Operand, b: Operand): Tensor {
  return compare('le', a, b);
}

/** 1 where a > b, else 0 (uint8, broadcasting). Op name: `gt`. */
export function gt(a: Operand, b: Operand): Tensor {
  return compare('gt', a, b);
}

/** 1 where a >= b, else 0 (uint8, broadcasting). Op name: `ge`. */
export function ge(a: Operand, b: Operand): Tensor {
  return compare('ge', a, b);
}

/** Broadcasts named shapes together; the error names every operand's shape. */
function broadcastNamed(op: string, shapes: readonly (readonly [string, Shape])[]): number[] {
  try {
    return shapes.reduce<number[]>((acc, [, s]) => broadcastShapes(acc, s, op), []);
  } catch {
    const list = shapes.map(([name, s]) => `${formatShape(s)} (${name})`).join(', ');
    throw new RangeError(`${op}: shapes ${list} do not broadcast`);
  }
}

/**
 * Elementwise `cond ? a : b` with broadcasting. `cond` must be uint8 (as comparisons return;
 * nonzero = true). `a` and `b` must share a dtype; a number takes the other's dtype, and
 * two numbers give float32. Op name: `where`, inputs [cond, a, b] broadcast to the output shape.
 */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  assertTensor(cond, 'where', 'condition');
  if (cond.dtype !== 'uint8') {
    throw new TypeError(`where: condition must be a uint8 tensor (as comparisons return), got ${cond.describe()}`);
  }
  assertOperand(a, 'where', 'a');
  assertOperand(b, 'where', 'b');
  if (isTensor(a) && isTensor(b) && a.dtype !== b.dtype) {
    throw new TypeError(`where: a and b have different dtypes (${a.describe()} and ${b.describe()}); cast one first`);
  }
  for (const t of [a, b]) {
    if (isTensor(t) && t.device !== cond.device) {
      throw new Error(`where: operands are on different devices (condition ${cond.describe()}, operand ${t.describe()})`);
    }
  }
  const dtype: DType = isTensor(a) ? a.dtype : isTensor(b) ? b.dtype : 'float32';
  const shape = broadcastNamed('where', [
    ['condition', cond.shape],
    ['a', isTensor(a) ? a.shape : []],
    ['b', isTensor(b) ? b.shape : []],
  ]);
  return tidy(() => {
    const ta = isTensor(a) ? a : scalarOperand('where', a, dtype, cond.device);
    const tb = isTensor(b) ? b : scalarOperand('where', b, dtype, cond.device);
    return execute1('where', [expand(cond, shape), expand(ta, shape), expand(tb, shape)], shape, dtype);
  });
}

/** Checks one clamp bound and, for integer dtypes, saturates it to the dtype's range. */
function clampBound(value: number | null | undefined, name: string, x: Tensor): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`clamp: ${name} must be a number or null, got ${String(value)}`);
  }
  const range = integerRange(x.dtype);
  if (!range) return value;
  if (!Number.isInteger(value) && Math.abs(value) !== Infinity) {
    throw new TypeError(`clamp: ${name} ${value} is not an integer but the tensor is ${x.describe()}; cast it to a float dtype first`);
  }
  // A bound beyond the dtype's range clamps nothing (or everything to the range's end).
  return Math.min(Math.max(value, range[0]), range[1]);
}

/**
 * Limits every element to [min, max] (either may be omitted or null; not both). Computes
 * min(max(x, min), max), so when min > max every element becomes max; NaN stays NaN.
 * For integer dtypes the bounds must be integers (or +-Infinity). Op name: `clamp` {min, max}.
 */
export function clamp(x: Tensor, min?: number | null, max?: number | null): Tensor {
  assertTensor(x, 'clamp');
  const lo = clampBound(min, 'min', x);
  const hi = clampBound(max, 'max', x);
  if (lo === null && hi === null) throw new TypeError('clamp: give at least one of min and max');
  return execute1('clamp', [x], x.shape, x.dtype, { min: lo, max: hi });
}

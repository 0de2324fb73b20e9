// The two reshaping primitives of the balanced adapters, average pooling of consecutive
// features and element-wise repetition, and the two maps their gradients are made of.
import { isFloatDType, type DType } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import { formatShape, normalizeAxis } from '../shape.js';
import type { Tensor } from '../tensor.js';

/**
 * Averages each run of `kernel` consecutive elements of the last dim (stride = kernel, no
 * padding): `[..., d] -> [..., d / kernel]`. `d` must be divisible by `kernel`. Float dtypes;
 * each run is summed in float64 and rounded once to the output dtype, which is
 * `options.dtype` (a float dtype; by default x's), so a cast can ride along:
 * `avgPool1d(x, 2, { dtype: 'float32' })` reads a bfloat16 x once.
 *
 * Op name: `avgPool1d`, inputs `[x]`, attrs `{ kernel }` (the output's dtype is the output tensor's).
 */
export function avgPool1d(x: Tensor, kernel: number, options: { dtype?: DType } = {}): Tensor {
  x.assertAlive('avgPool1d');
  if (!isFloatDType(x.dtype)) throw new TypeError(`avgPool1d: expected a floating-point tensor, got ${x.describe()}`);
  if (!Number.isInteger(kernel) || kernel < 1) throw new RangeError(`avgPool1d: kernel must be a positive integer, got ${kernel}`);
  if (x.rank === 0) throw new RangeError(`avgPool1d: needs at least one dimension, got ${x.describe()}`);
  const dtype = options.dtype ?? x.dtype;
  if (!isFloatDType(dtype)) throw new TypeError(`avgPool1d: the output dtype must be a float dtype, got ${dtype}`);
  const last = x.shape[x.rank - 1]!;
  if (last % kernel !== 0) {
    throw new RangeError(`avgPool1d: last dim ${last} of ${formatShape(x.shape)} is not divisible by kernel ${kernel}`);
  }
  return execute1('avgPool1d', [x], [...x.shape.slice(0, -1), last / kernel], dtype, { kernel });
}

/** Checks what avgPool1dBackward and sumRuns share: a float tensor with a last dim and a positive kernel. */
function checkRunOperand(op: string, x: Tensor, kernel: number): void {
  x.assertAlive(op);
  if (!isFloatDType(x.dtype)) throw new TypeError(`${op}: expected a floating-point tensor, got ${x.describe()}`);
  if (!Number.isInteger(kernel) || kernel < 1) throw new RangeError(`${op}: kernel must be a positive integer, got ${kernel}`);
  if (x.rank === 0) throw new RangeError(`${op}: needs at least one dimension, got ${x.describe()}`);
}

/**
 * The gradient of `avgPool1d`: every element of `dy` repeated `kernel` times along the last
 * dim and divided by `kernel`, `[..., d] -> [..., d * kernel]`; the same values as
 * `div(repeatInterleave(dy, kernel), kernel)` in one pass.
 *
 * Op name: `avgPool1dBackward`, inputs `[dy]`, attrs `{ kernel }`.
 */
export function avgPool1dBackward(dy: Tensor, kernel: number): Tensor {
  checkRunOperand('avgPool1dBackward', dy, kernel);
  const last = dy.shape[dy.rank - 1]!;
  return execute1('avgPool1dBackward', [dy], [...dy.shape.slice(0, -1), last * kernel], dy.dtype, { kernel });
}

/**
 * Sums each run of `kernel` consecutive elements of the last dim, `[..., d] -> [..., d / kernel]`
 * (`d` divisible by `kernel`): the gradient of `repeatInterleave` along the last dim. Float
 * dtypes; each run is summed in order in float64 and rounded once.
 *
 * Op name: `sumRuns`, inputs `[x]`, attrs `{ kernel }`.
 */
export function sumRuns(x: Tensor, kernel: number): Tensor {
  checkRunOperand('sumRuns', x, kernel);
  const last = x.shape[x.rank - 1]!;
  if (last % kernel !== 0) {
    throw new RangeError(`sumRuns: last dim ${last} of ${formatShape(x.shape)} is not divisible by kernel ${kernel}`);
  }
  return execute1('sumRuns', [x], [...x.shape.slice(0, -1), last / kernel], x.dtype, { kernel });
}

/**
 * Repeats every element `repeats` times in place along `axis` (default the last):
 * `[a, b] -> [a, a, b, b]` for `repeats = 2`, unlike tiling. Any dtype.
 *
 * Op name: `repeatInterleave`, inputs `[x]`, attrs `{ repeats, axis }` (axis normalized).
 */
export function repeatInterleave(x: Tensor, repeats: number, axis = -1): Tensor {
  x.assertAlive('repeatInterleave');
  if (!Number.isInteger(repeats) || repeats < 0) {
    throw new RangeError(`repeatInterleave: repeats must be a non-negative integer, got ${repeats}`);
  }
  const ax = normalizeAxis(axis, x.rank, 'repeatInterleave');
  const shape = [...x.shape];
  shape[ax]! *= repeats;
  return execute1('repeatInterleave', [x], shape, x.dtype, { repeats, axis: ax });
}

// Selecting and accumulating along an axis by integer indices.
import { isCapturingGraph } from '../backend.js';
import { execute1 } from '../dispatch.js';
import { formatShape, normalizeAxis } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { reshape } from './views.js';

function assertIndexTensor(op: string, index: Tensor): void {
  index.assertAlive(op);
  if (index.dtype !== 'int32') throw new TypeError(`${op}: index must be int32, got ${index.describe()}`);
}

function assertSameDevice(op: string, tensors: readonly Tensor[]): void {
  const device = tensors[0]!.device;
  if (tensors.some((t) => t.device !== device)) {
    throw new Error(`${op}: all tensors must be on one device, got ${tensors.map((t) => t.describe()).join(', ')}`);
  }
}

/**
 * Throws, naming the op, the first bad index and the valid range, unless every value of
 * `index` lies in [0, size). Runs before any kernel so nothing is written on failure.
 */
function assertIndicesInRange(op: string, index: Tensor, size: number, axis: number): void {
  if (isCapturingGraph()) return;  // nothing to read yet: see isCapturingGraph
  const values = index.toTypedArray() as Int32Array;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < 0 || v >= size) {
      throw new RangeError(`${op}: index ${v} (at position ${i}) is out of range for dim ${axis} of size ${size}; valid indices are 0..${size - 1}`);
    }
  }
}

/**
 * The slices of `x` at positions `index` (int32, 1-D) along `axis`, in that order
 * (repeats allowed): the result has `x`'s shape with dim `axis` replaced by `index.length`.
 * Indices must lie in `[0, x.shape[axis])`. Any dtype.
 *
 * Op name: `indexSelect`, inputs `[x, index]`, attrs `{ axis }` (normalized).
 */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  x.assertAlive('indexSelect');
  assertIndexTensor('indexSelect', index);
  assertSameDevice('indexSelect', [x, index]);
  const ax = normalizeAxis(axis, x.rank, 'indexSelect');
  if (index.rank !== 1) throw new RangeError(`indexSelect: index must be 1-D, got ${index.describe()}`);
  assertIndicesInRange('indexSelect', index, x.shape[ax]!, ax);
  const shape = [...x.shape];
  shape[ax] = index.shape[0]!;
  return execute1('indexSelect', [x, index], shape, x.dtype, { axis: ax });
}

/**
 * Rows of `table` (shape `[vocab, ...]`) picked by `ids` of any shape: the result has shape
 * `[...ids.shape, ...table.shape.slice(1)]`. Implemented as `indexSelect` on axis 0 of
 * the flattened ids, then a reshape.
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  table.assertAlive('embedding');
  assertIndexTensor('embedding', ids);
  assertSameDevice('embedding', [table, ids]);
  if (table.rank === 0) throw new RangeError(`embedding: table must have at least one dimension, got ${table.describe()}`);
  assertIndicesInRange('embedding', ids, table.shape[0]!, 0);
  const picked = indexSelect(table, 0, reshape(ids, [ids.numel]));
  return reshape(picked, [...ids.shape, ...table.shape.slice(1)]);
}

/** Checks the shapes of gather/scatterAdd: index fits inside `other` on every dim (but `axis` for `x`). */
function assertIndexFits(op: string, x: Tensor, index: Tensor, ax: number, src?: Tensor): void {
  if (index.rank !== x.rank) {
    throw new RangeError(`${op}: index must have the rank of x (${x.rank}), got ${index.describe()} for x ${x.describe()}`);
  }
  for (let d = 0; d < x.rank; d++) {
    if (d !== ax && index.shape[d]! > x.shape[d]!) {
      throw new RangeError(`${op}: index ${formatShape(index.shape)} is larger than x ${formatShape(x.shape)} at dim ${d} (only dim ${ax} may differ)`);
    }
    if (src && index.shape[d]! > src.shape[d]!) {
      throw new RangeError(`${op}: index ${formatShape(index.shape)} is larger than src ${formatShape(src.shape)} at dim ${d}`);
    }
  }
}

/**
 * `out[p] = x[p with coordinate axis replaced by index[p]]` for every position p of `index`
 * (torch.gather). `index` is int32 with the rank of `x`, no larger than `x` on the other
 * dims; the result has `index`'s shape and `x`'s dtype.
 *
 * Op name: `gather`, inputs `[x, index]`, attrs `{ axis }` (normalized).
 */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  x.assertAlive('gather');
  assertIndexTensor('gather', index);
  assertSameDevice('gather', [x, index]);
  const ax = normalizeAxis(axis, x.rank, 'gather');
  assertIndexFits('gather', x, index, ax);
  assertIndicesInRange('gather', index, x.shape[ax]!, ax);
  return execute1('gather', [x, index], index.shape, x.dtype, { axis: ax });
}

/**
 * A copy of `x` with `src[p]` added at `x[p with coordinate axis replaced by index[p]]` for
 * every position p of `index` (torch scatter_add, out of place; repeated targets accumulate).
 * `index` (int32) has the rank of `x` and is no larger than `src` on any dim nor than `x` on
 * the dims other than `axis`. `src` has `x`'s dtype. Integer dtypes wrap on overflow.
 *
 * Op name: `scatterAdd`, inputs `[x, index, src]`, attrs `{ axis }` (normalized).
 */
export function scatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  x.assertAlive('scatterAdd');
  src.assertAlive('scatterAdd');
  assertIndexTensor('scatterAdd', index);
  assertSameDevice('scatterAdd', [x, index, src]);
  if (src.dtype !== x.dtype) throw new TypeError(`scatterAdd: src ${src.describe()} must have the dtype of x ${x.describe()}`);
  const ax = normalizeAxis(axis, x.rank, 'scatterAdd');
  if (src.rank !== x.rank) throw new RangeError(`scatterAdd: src must have the rank of x (${x.rank}), got ${src.describe()}`);
  assertIndexFits('scatterAdd', x, index, ax, src);
  assertIndicesInRange('scatterAdd', index, x.shape[ax]!, ax);
  return execute1('scatterAdd', [x, index, src], x.shape, x.dtype, { axis: ax });
}

/**
 * A copy of `x` with slice `i` of `src` along `axis` added to slice `index[i]` of `x`
 * (torch index_add, out of place; repeated indices accumulate). `index` is int32 1-D;
 * `src` has `x`'s dtype and shape except `src.shape[axis] = index.length`.
 *
 * Op name: `indexAdd`, inputs `[x, index, src]`, attrs `{ axis }` (normalized).
 */
export function indexAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  x.assertAlive('indexAdd');
  src.assertAlive('indexAdd');
  assertIndexTensor('indexAdd', index);
  assertSameDevice('indexAdd', [x, index, src]);
  if (src.dtype !== x.dtype) throw new TypeError(`indexAdd: src ${src.describe()} must have the dtype of x ${x.describe()}`);
  const ax = normalizeAxis(axis, x.rank, 'indexAdd');
  if (index.rank !== 1) throw new RangeError(`indexAdd: index must be 1-D, got ${index.describe()}`);
  const expected = [...x.shape];
  expected[ax] = index.shape[0]!;
  if (src.rank !== x.rank || src.shape.some((d, i) => d !== expected[i])) {
    throw new RangeError(`indexAdd: src must have shape ${formatShape(expected)} (x ${formatShape(x.shape)} with dim ${ax} = index length), got ${formatShape(src.shape)}`);
  }
  assertIndicesInRange('indexAdd', index, x.shape[ax]!, ax);
  return execute1('indexAdd', [x, index, src], x.shape, x.dtype, { axis: ax });
}

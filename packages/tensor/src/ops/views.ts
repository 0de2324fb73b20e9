// Views: new shapes over the same storage, no data copied.
// Each is announced to the op observer under the name its gradient rule uses.
import { execute1, recordOp } from '../dispatch.js';
import { formatShape, normalizeAxis, numel, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';

function announce(op: string, input: Tensor, out: Tensor, attrs: Record<string, unknown>): Tensor {
  recordOp(op, [input], [out], attrs);
  return out;
}

/** Resolves one `-1` in a target shape against `total` elements. */
function resolveShape(shape: Shape, total: number, where: string, from: Shape): number[] {
  const out = [...shape];
  const wild = out.indexOf(-1);
  if (out.filter((d) => d === -1).length > 1) throw new RangeError(`${where}: only one dimension may be -1, got ${formatShape(shape)}`);
  if (out.some((d, i) => i !== wild && (!Number.isInteger(d) || d < 0))) {
    throw new RangeError(`${where}: invalid target shape ${formatShape(shape)}`);
  }
  if (wild >= 0) {
    const known = out.reduce((p, d, i) => (i === wild ? p : p * d), 1);
    if (known === 0 || total % known !== 0) {
      throw new RangeError(`${where}: cannot reshape ${formatShape(from)} (${total} elements) into ${formatShape(shape)}`);
    }
    out[wild] = total / known;
  }
  if (numel(out) !== total) {
    throw new RangeError(`${where}: cannot reshape ${formatShape(from)} (${total} elements) into ${formatShape(shape)} (${numel(out)} elements)`);
  }
  return out;
}

/** A contiguous copy of `t` (or `t` itself when already contiguous). Op name: `copy`. */
export function contiguous(t: Tensor): Tensor {
  t.assertAlive('contiguous');
  if (t.isContiguous) return t;
  return execute1('copy', [t], t.shape, t.dtype);
}

/** A contiguous copy of `t`, always new memory. Op name: `copy`. */
export function clone(t: Tensor): Tensor {
  t.assertAlive('clone');
  return execute1('copy', [t], t.shape, t.dtype);
}

/** Same elements, new shape (one dim may be -1). A view when `t` is contiguous, else a copy then a view. */
export function reshape(t: Tensor, shape: Shape): Tensor {
  t.assertAlive('reshape');
  const target = resolveShape(shape, t.numel, 'reshape', t.shape);
  const src = contiguous(t);
  const strides: number[] = [];
  let s = 1;
  for (let i = target.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= target[i]!;
  }
  return announce('reshape', src, Tensor.view(src, target, strides, src.offset), { shape: target, from: [...t.shape] });
}

/** Like `reshape` but never copies: throws when `t` is not contiguous. */
export function view(t: Tensor, shape: Shape): Tensor {
  t.assertAlive('view');
  if (!t.isContiguous) {
    throw new Error(`view: tensor ${t.describe()} is not contiguous (strides [${t.strides.join(', ')}]); use reshape or contiguous first`);
  }
  return reshape(t, shape);
}

/** Reorders dimensions: output dim i is input dim `dims[i]`. */
export function permute(t: Tensor, dims: readonly number[]): Tensor {
  t.assertAlive('permute');
  const rank = t.rank;
  if (dims.length !== rank) {
    throw new RangeError(`permute: got ${dims.length} dims [${dims.join(', ')}] for a tensor of rank ${rank} ${formatShape(t.shape)}`);
  }
  const norm = dims.map((d) => normalizeAxis(d, rank, 'permute'));
  if (new Set(norm).size !== rank) throw new RangeError(`permute: dims [${dims.join(', ')}] are not a permutation`);
  const out = Tensor.view(t, norm.map((d) => t.shape[d]!), norm.map((d) => t.strides[d]!), t.offset);
  return announce('permute', t, out, { dims: norm });
}

/** Swaps two dimensions (default: the last two). */
export function transpose(t: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const rank = t.rank;
  const a = normalizeAxis(dim0, rank, 'transpose');
  const b = normalizeAxis(dim1, rank, 'transpose');
  const dims = Array.from({ length: rank }, (_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(t, dims);
}

/** Elements `start, start+step, ... < end` along `axis` (negative start/end count from the end). */
export function slice(t: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  t.assertAlive('slice');
  const ax = normalizeAxis(axis, t.rank, 'slice');
  const size = t.shape[ax]!;
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`slice: step must be a positive integer, got ${step}`);
  // +-Infinity are allowed and clamp like any out-of-range bound.
  const isBound = (i: number) => Number.isInteger(i) || i === Infinity || i === -Infinity;
  if (!isBound(start) || (end !== undefined && !isBound(end))) {
    throw new RangeError(`slice: start and end must be integers, got ${start} and ${end}`);
  }
  const clampIndex = (i: number) => Math.min(Math.max(i < 0 ? i + size : i, 0), size);
  const s = clampIndex(start);
  const e = clampIndex(end ?? size);
  const len = e > s ? Math.ceil((e - s) / step) : 0;
  const shape = [...t.shape];
  const strides = [...t.strides];
  shape[ax] = len;
  strides[ax] = t.strides[ax]! * step;
  const out = Tensor.view(t, shape, strides, t.offset + s * t.strides[ax]!);
  return announce('slice', t, out, { axis: ax, start: s, end: e, step });
}

/** `length` elements from `start` along `axis`; throws when the range does not fit. */
export function narrow(t: Tensor, axis: number, start: number, length: number): Tensor {
  const ax = normalizeAxis(axis, t.rank, 'narrow');
  const size = t.shape[ax]!;
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > size) {
    throw new RangeError(`narrow: range [${start}, ${start + length}) does not fit dim ${ax} of size ${size} in ${formatShape(t.shape)}`);
  }
  return slice(t, ax, start, start + length);
}

/** Broadcasts `t` to `shape` without copying (stride 0 on repeated dims). -1 keeps a dim. */
export function expand(t: Tensor, shape: Shape): Tensor {
  t.assertAlive('expand');
  const rank = shape.length;
  if (rank < t.rank) throw new RangeError(`expand: cannot expand ${formatShape(t.shape)} to fewer dims ${formatShape(shape)}`);
  const lead = rank - t.rank;
  const outShape: number[] = [];
  const strides: number[] = [];
  for (let i = 0; i < rank; i++) {
    const src = i >= lead ? t.shape[i - lead]! : 1;
    let want = shape[i]!;
    if (want === -1 && i >= lead) want = src;
    if (!Number.isInteger(want) || want < 0) {
      throw new RangeError(`expand: invalid size ${shape[i]} at dim ${i} of ${formatShape(shape)} for ${formatShape(t.shape)}` +
        (want === -1 ? ' (-1 only keeps an existing dim, not a new leading one)' : ''));
    }
    if (src !== want && src !== 1) {
      throw new RangeError(`expand: cannot expand ${formatShape(t.shape)} to ${formatShape(shape)} (dim ${i}: ${src} vs ${want})`);
    }
    outShape.push(want);
    strides.push(src === want && i >= lead ? t.strides[i - lead]! : 0);
  }
  if (outShape.length === t.rank && outShape.every((d, i) => d === t.shape[i])) return t;
  return announce('expand', t, Tensor.view(t, outShape, strides, t.offset), { shape: outShape, from: [...t.shape] });
}

/** Removes size-1 dims (all, or the given one). */
export function squeeze(t: Tensor, axis?: number): Tensor {
  if (axis === undefined) return reshapeView(t, t.shape.filter((d) => d !== 1), t.strides.filter((_, i) => t.shape[i] !== 1));
  const ax = normalizeAxis(axis, t.rank, 'squeeze');
  if (t.shape[ax] !== 1) return t;
  return reshapeView(t, t.shape.filter((_, i) => i !== ax), t.strides.filter((_, i) => i !== ax));
}

/** Inserts a size-1 dim at `axis` (range -rank-1 .. rank). */
export function unsqueeze(t: Tensor, axis: number): Tensor {
  const ax = normalizeAxis(axis, t.rank + 1, 'unsqueeze');
  const shape = [...t.shape];
  const strides = [...t.strides];
  shape.splice(ax, 0, 1);
  strides.splice(ax, 0, ax < t.rank ? t.strides[ax]! * t.shape[ax]! : 1);
  return reshapeView(t, shape, strides);
}

/** Merges dims `start..end` (inclusive) into one. */
export function flatten(t: Tensor, start = 0, end = -1): Tensor {
  if (t.rank === 0) return reshape(t, [1]);
  const s = normalizeAxis(start, t.rank, 'flatten');
  const e = normalizeAxis(end, t.rank, 'flatten');
  if (e < s) throw new RangeError(`flatten: end dim ${end} is before start dim ${start}`);
  const merged = t.shape.slice(s, e + 1).reduce((a, b) => a * b, 1);
  return reshape(t, [...t.shape.slice(0, s), merged, ...t.shape.slice(e + 1)]);
}

// Adding or dropping size-1 dims keeps every stride meaningful, so no copy is needed even
// for non-contiguous tensors. Recorded as a reshape for autograd.
function reshapeView(t: Tensor, shape: number[], strides: number[]): Tensor {
  t.assertAlive('reshape');
  return announce('reshape', t, Tensor.view(t, shape, strides, t.offset), { shape, from: [...t.shape] });
}

// Shape helpers shared by the gradient rules.
import { cast, expand, reshape, sum, type Tensor } from '@blora/tensor';

/** The shape of a reduction's result with the reduced `axes` kept as size-1 dims. */
export function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/**
 * Broadcasts the gradient of a reduction (over `axes`, with or without `keepdim`) back to
 * the input's `shape`: a stride-0 view, no copy.
 */
export function unreduce(g: Tensor, shape: readonly number[], axes: readonly number[], keepdim: boolean): Tensor {
  const kept = keepdim ? g : reshape(g, keptShape(shape, axes));
  return expand(kept, shape);
}

/**
 * Sums `g` down to `target`, the shape it was broadcast from (NumPy rules): the leading
 * dims `g` has in excess, and every dim where `target` is 1 and `g` is not.
 */
export function sumToShape(g: Tensor, target: readonly number[]): Tensor {
  const lead = g.rank - target.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (target[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  if (axes.length === 0) return g.rank === target.length ? g : reshape(g, target);
  return reshape(sum(g, axes, true), target);
}

/** A 0/1 mask (uint8, as comparisons return) as a tensor of `like`'s dtype. */
export function maskOf(mask: Tensor, like: Tensor): Tensor {
  return cast(mask, like.dtype);
}

/** Number of elements over `axes` of `shape`. */
export function countOver(shape: readonly number[], axes: readonly number[]): number {
  let n = 1;
  for (const a of axes) n *= shape[a]!;
  return n;
}

/** For a product of two inputs, each input's gradient reads the other one: what to save. */
export function crossInputs(needsGrad: readonly boolean[]): number[] {
  const keep: number[] = [];
  if (needsGrad[1]) keep.push(0);
  if (needsGrad[0]) keep.push(1);
  return keep;
}

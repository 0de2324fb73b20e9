// Gradient rules of the view and data-movement ops: reshape, permute, slice, expand, copy,
// cast and to. None of them reads the values of what it saved, so the tape keeps nothing.
import { arange, cast, cat, indexAdd, permute, reshape, zeros, type Tensor } from '@blora/tensor';
import { registerGradient } from '../gradients.js';
import { sumToShape } from './util.js';

const NOTHING = { inputs: [], outputs: [] } as const;

registerGradient('reshape', ({ attrs, outputGrads: [g] }) => [reshape(g!, attrs.from as number[])], NOTHING);

registerGradient('permute', ({ attrs, outputGrads: [g] }) => {
  const dims = attrs.dims as number[];
  const inverse = new Array<number>(dims.length);
  dims.forEach((d, i) => (inverse[d] = i));
  return [permute(g!, inverse)];
}, NOTHING);

// expand repeats elements along broadcast dims, so each input element's gradient is the sum
// over its copies.
registerGradient('expand', ({ attrs, outputGrads: [g] }) => [sumToShape(g!, attrs.from as number[])], NOTHING);

registerGradient('slice', ({ inputs: [x], attrs, outputGrads: [g] }) => [unslice(g!, x!, attrs)], NOTHING);

/** The gradient of a slice: `g` placed at the sliced positions of a zero tensor shaped like `x`. */
function unslice(g: Tensor, x: Tensor, attrs: Readonly<Record<string, unknown>>): Tensor {
  const axis = attrs.axis as number;
  const start = attrs.start as number;
  const step = attrs.step as number;
  const size = x.shape[axis]!;
  const len = g.shape[axis]!;
  const opts = { dtype: x.dtype, device: x.device };
  const zerosAlong = (n: number) => zeros(x.shape.map((d, i) => (i === axis ? n : d)), opts);
  if (step === 1 || len <= 1) {
    // Contiguous range: zeros before, the gradient, zeros after.
    const parts: Tensor[] = [];
    if (start > 0) parts.push(zerosAlong(start));
    parts.push(g);
    const after = size - start - len;
    if (after > 0) parts.push(zerosAlong(after));
    return parts.length === 1 ? g : cat(parts, axis);
  }
  const index = arange(start, start + len * step, step, { dtype: 'int32', device: x.device });
  return indexAdd(zerosAlong(size), axis, index, g);
}

registerGradient('copy', ({ outputGrads: [g] }) => [g!], NOTHING);

registerGradient('cast', ({ inputs: [x], outputGrads: [g] }) => [g!.dtype === x!.dtype ? g! : cast(g!, x!.dtype)], NOTHING);

registerGradient('to', ({ inputs: [x], outputGrads: [g] }) => [g!.to(x!.device)], NOTHING);

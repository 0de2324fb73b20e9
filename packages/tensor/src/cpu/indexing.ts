// CPU kernels for indexSelect, gather, scatterAdd and indexAdd. The front ends have already
// checked every index, so kernels index storage directly. Selections copy raw storage
// elements (exact for every dtype); additions run in the compute type.
import { registerKernel } from '../dispatch.js';
import { contiguousStrides, numel, type Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { commitValues, outputValues, readValues, storageOf, type ComputeArray } from './access.js';

/**
 * Storage offsets of every position of a strided layout (shape, strides, offset) in
 * row-major order: an odometer over the index, one add per element.
 */
function layoutOffsets(shape: Shape, strides: readonly number[], offset: number): Int32Array {
  const n = numel(shape);
  const out = new Int32Array(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let o = offset;
  for (let i = 0; i < n; i++) {
    out[i] = o;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]! += 1;
      o += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      o -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** Strides of `t` with `axis` zeroed: offsets computed with them point at coordinate 0 of `axis`. */
function stridesPinned(strides: readonly number[], axis: number): number[] {
  const s = [...strides];
  s[axis] = 0;
  return s;
}

/** Sizes before and after `axis`, flattened. */
function aroundAxis(shape: Shape, axis: number): { outer: number; inner: number } {
  return { outer: numel(shape.slice(0, axis)), inner: numel(shape.slice(axis + 1)) };
}

registerKernel('indexSelect', 'cpu', ([x, index], [out], { axis }) => {
  const ax = axis as number;
  if (out!.numel === 0) return;
  const idx = readValues(index!) as Int32Array;
  const src = storageOf(x!);
  const dst = storageOf(out!);
  const count = idx.length;
  const size = x!.shape[ax]!;
  const { outer, inner } = aroundAxis(x!.shape, ax);
  if (x!.isContiguous) {
    let p = 0;
    for (let o = 0; o < outer; o++) {
      for (let l = 0; l < count; l++) {
        const from = x!.offset + (o * size + idx[l]!) * inner;
        for (let i = 0; i < inner; i++) dst[p++] = src[from + i]!;
      }
    }
    return;
  }
  // Offsets of every (outer, inner) position at coordinate 0 of the axis.
  const pinnedShape = [...x!.shape];
  pinnedShape[ax] = 1;
  const base = layoutOffsets(pinnedShape, x!.strides, x!.offset);
  const step = x!.strides[ax]!;
  let p = 0;
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < count; l++) {
      const shift = idx[l]! * step;
      for (let i = 0, b = o * inner; i < inner; i++, b++) dst[p++] = src[base[b]! + shift]!;
    }
  }
});

registerKernel('gather', 'cpu', ([x, index], [out], { axis }) => {
  const ax = axis as number;
  if (out!.numel === 0) return;
  const idx = readValues(index!) as Int32Array;
  const src = storageOf(x!);
  const dst = storageOf(out!);
  const base = layoutOffsets(index!.shape, stridesPinned(x!.strides, ax), x!.offset);
  const step = x!.strides[ax]!;
  for (let p = 0; p < base.length; p++) dst[p] = src[base[p]! + idx[p]! * step]!;
});

/** A fresh compute-type copy of `x` in the layout of the contiguous output. */
function startFrom(x: Tensor, out: Tensor): ComputeArray {
  const dst = outputValues(out);
  dst.set(readValues(x));
  return dst;
}

registerKernel('scatterAdd', 'cpu', ([x, index, src], [out], { axis }) => {
  const ax = axis as number;
  const dst = startFrom(x!, out!);
  if (index!.numel > 0) {
    const idx = readValues(index!) as Int32Array;
    const values = readValues(src!);
    // Positions of index's elements inside the contiguous output (at coordinate 0 of the axis) and inside src.
    const outStrides = contiguousStrides(out!.shape);
    const target = layoutOffsets(index!.shape, stridesPinned(outStrides, ax), 0);
    const from = layoutOffsets(index!.shape, contiguousStrides(src!.shape), 0);
    const step = outStrides[ax]!;
    for (let p = 0; p < idx.length; p++) dst[target[p]! + idx[p]! * step] += values[from[p]!]!;
  }
  commitValues(out!, dst);
});

registerKernel('indexAdd', 'cpu', ([x, index, src], [out], { axis }) => {
  const ax = axis as number;
  const dst = startFrom(x!, out!);
  if (src!.numel > 0) {
    const idx = readValues(index!) as Int32Array;
    const values = readValues(src!);
    const count = idx.length;
    const size = x!.shape[ax]!;
    const { outer, inner } = aroundAxis(x!.shape, ax);
    for (let o = 0; o < outer; o++) {
      for (let l = 0; l < count; l++) {
        const to = (o * size + idx[l]!) * inner;
        const fromRow = (o * count + l) * inner;
        for (let i = 0; i < inner; i++) dst[to + i] += values[fromRow + i]!;
      }
    }
  }
  commitValues(out!, dst);
});

// CPU kernel for cat: copies raw storage elements, so every dtype is exact.
import type { TypedArray } from '../dtype.js';
import { registerKernel } from '../dispatch.js';
import { numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { elementOffsets, storageOf } from './access.js';

/** The raw storage elements of `t` in row-major order (a zero-copy subarray when dense). */
export function rawValues(t: Tensor): TypedArray {
  const raw = storageOf(t);
  if (t.isContiguous) return raw.subarray(t.offset, t.offset + t.numel);
  const offsets = elementOffsets(t);
  const out = new (raw.constructor as new (n: number) => TypedArray)(offsets.length);
  for (let i = 0; i < offsets.length; i++) out[i] = raw[offsets[i]!]!;
  return out;
}

registerKernel('cat', 'cpu', (inputs, [out], { axis }) => {
  const ax = axis as number;
  const dst = storageOf(out!);
  if (dst.length === 0) return;
  // Each input fills a block of `width` consecutive elements in every one of the `outer` output rows.
  const outer = numel(out!.shape.slice(0, ax));
  const inner = numel(out!.shape.slice(ax + 1));
  const rowLength = out!.shape[ax]! * inner;
  let column = 0;
  for (const t of inputs) {
    const width = t.shape[ax]! * inner;
    if (width === 0) continue;
    const values = rawValues(t);
    for (let o = 0; o < outer; o++) {
      const to = o * rowLength + column;
      const from = o * width;
      // Bulk copies pay off for long blocks; short ones are cheaper element by element.
      if (width >= 64) dst.set(values.subarray(from, from + width) as never, to);
      else for (let j = 0; j < width; j++) dst[to + j] = values[from + j]!;
    }
    column += width;
  }
});

// CPU kernels that move values without arithmetic: copy (strided -> contiguous), cast, fill, and the
// in-place writes copyInto / copyIntoAt.
import { getKernel, registerKernel } from '../dispatch.js';
import { Tensor } from '../tensor.js';
import { encodeValues } from '../ops/creation.js';
import { commitValues, elementOffsets, outputValues, readValues, storageOf } from './access.js';

registerKernel('copy', 'cpu', ([x], [out]) => {
  // Raw element copy keeps half-type bit patterns exactly.
  const src = storageOf(x!);
  const dst = storageOf(out!);
  if (x!.isContiguous) {
    dst.set(src.subarray(x!.offset, x!.offset + x!.numel) as never);
    return;
  }
  const offs = elementOffsets(x!);
  for (let i = 0; i < offs.length; i++) dst[i] = src[offs[i]!]!;
});

registerKernel('cast', 'cpu', ([x], [out]) => {
  const values = readValues(x!);
  const dst = outputValues(out!);
  if (dst instanceof Float32Array || dst instanceof Float64Array) {
    dst.set(values);
  } else {
    // Float -> integer truncates toward zero; NaN becomes 0. Typed-array stores wrap out-of-range values.
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      dst[i] = Number.isNaN(v) ? 0 : Math.trunc(v);
    }
  }
  commitValues(out!, dst);
});

registerKernel('fill', 'cpu', (_, [out], { value }) => {
  storageOf(out!).fill(encodeValues([value as number], out!.dtype)[0]!);
});

registerKernel('copyInto', 'cpu', ([src], [dst]) => {
  // Raw element copy between any two layouts (bit patterns of half types kept).
  const from = storageOf(src!);
  const to = storageOf(dst!);
  if (src!.isContiguous && dst!.isContiguous) {
    to.set(from.subarray(src!.offset, src!.offset + src!.numel) as never, dst!.offset);
    return;
  }
  const read = elementOffsets(src!);
  const write = elementOffsets(dst!);
  for (let i = 0; i < write.length; i++) to[write[i]!] = from[read[i]!]!;
});

registerKernel('copyIntoAt', 'cpu', ([src, position], [dst], { axis }) => {
  const ax = axis as number;
  const start = readValues(position!)[0]!;
  const length = src!.shape[ax]!;
  if (start < 0 || start + length > dst!.shape[ax]!) return;
  const strides = dst!.strides;
  const window = Tensor.view(dst!, src!.shape, strides, dst!.offset + start * strides[ax]!);
  try {
    getKernel('copyInto', 'cpu')([src!], [window], {});
  } finally {
    window.dispose();
  }
});

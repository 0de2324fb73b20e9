// Dense operands for kernels that read contiguous memory only: a contiguous tensor is passed
// as it is, any other view through a contiguous scratch copy made on the device.
import { contiguousStrides, itemSize, type Tensor } from '@blora/tensor';
import { bufferOf, layoutArg, tensorArg } from '../descriptor.js';
import { native } from '../native.js';

/**
 * Calls `use` with a descriptor of each tensor, every one of them dense (row-major from its
 * first element) and, given `align`, starting at an address that is a multiple of it (else
 * copied too). Scratch copies are freed afterwards; the launches queued by `use` are ordered
 * before any later user of that memory, since everything runs on one stream.
 */
export function withDense<T>(tensors: readonly Tensor[], use: (args: Float64Array[]) => T, align = 1): T {
  const addon = native();
  const scratch: number[] = [];
  try {
    const args = tensors.map((t) => {
      const bytes = t.numel * itemSize(t.dtype);
      if (usedInPlace(t, align)) return tensorArg(t);
      const address = addon.malloc(bytes);
      scratch.push(address);
      const dense = layoutArg(address, 0, t.dtype, t.shape, contiguousStrides(t.shape));
      addon.copy(tensorArg(t), dense);
      return dense;
    });
    return use(args);
  } finally {
    for (const address of scratch) addon.free(address);
  }
}

/**
 * Whether `withDense` passes `t` as it is (dense and aligned, or empty) rather than a copy made just
 * before the launch (which a product reading its weight early, `settled`, must not read).
 */
export function usedInPlace(t: Tensor, align = 1): boolean {
  const aligned = align === 1 || (bufferOf(t).address + t.offset * itemSize(t.dtype)) % align === 0;
  return (t.isContiguous && aligned) || t.numel === 0;
}

/** The same dense memory as the dense descriptor `arg`, described with another shape of equal size. */
export function reshapeDense(arg: Float64Array, shape: readonly number[]): Float64Array {
  // Plain loops: this runs on every launch of several kernels (0.09 µs a call, against 0.8 µs with
  // subarray / Array.from / reduce, on a 2-core x86 host).
  const rank = arg[3]!;
  let old = 1;
  for (let i = 0; i < rank; i++) old *= arg[4 + i]!;
  let size = 1;
  for (let i = 0; i < shape.length; i++) size *= shape[i]!;
  if (size !== old) throw new RangeError(`cuda: cannot view ${old} elements as [${shape.join(', ')}]`);
  const n = shape.length;
  const out = new Float64Array(4 + 2 * n);
  out[0] = arg[0]!;
  out[1] = arg[1]!;
  out[2] = arg[2]!;
  out[3] = n;
  let stride = 1;
  for (let i = n - 1; i >= 0; i--) {
    out[4 + i] = shape[i]!;
    out[4 + n + i] = stride;
    stride *= shape[i]!;
  }
  return out;
}

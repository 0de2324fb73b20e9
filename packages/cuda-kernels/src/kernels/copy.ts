// fill, copy (strided -> contiguous), copyInto / copyIntoAt (any layout -> any layout, in place;
// copyIntoAt at a position read on the device) and cast on the cuda device.
import { encodeValues, registerKernel, type DType } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';

/** The storage bits of `value` as `dtype` (exactly what the CPU's fill writes), as two 32-bit halves. */
function fillBits(value: number, dtype: DType): [low: number, high: number] {
  const raw = encodeValues([value], dtype);
  const words = new Uint32Array(2);
  new Uint8Array(words.buffer).set(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
  return [words[0]!, words[1]!];
}

/** Registers fill, copy, copyInto, copyIntoAt and cast for 'cuda'. */
export function registerCopyKernels(): void {
  registerKernel('fill', 'cuda', (_inputs, [out], attrs) => {
    const [low, high] = fillBits(attrs.value as number, out!.dtype);
    runKernel('fill', [out!], () => native().fill(tensorArg(out!), low, high));
  });
  registerKernel('copy', 'cuda', ([x], [out]) => {
    runKernel('copy', [x!, out!], () => native().copy(tensorArg(x!), tensorArg(out!)));
  });
  registerKernel('copyInto', 'cuda', ([src], [dst]) => {
    runKernel('copyInto', [src!, dst!], () => native().copyInto(tensorArg(src!), tensorArg(dst!)));
  });
  registerKernel('copyIntoAt', 'cuda', ([src, position], [dst], attrs) => {
    runKernel('copyIntoAt', [src!, position!, dst!], () =>
      native().copyIntoAt(tensorArg(src!), tensorArg(dst!), tensorArg(position!), attrs.axis as number));
  });
  registerKernel('cast', 'cuda', ([x], [out]) => {
    runKernel('cast', [x!, out!], () => native().cast(tensorArg(x!), tensorArg(out!)));
  });
}

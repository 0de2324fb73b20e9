// indexSelect, gather, scatterAdd and indexAdd on the cuda device. Selections copy element
// bits. Additions seed an accumulator with x (the output itself when its dtype accumulates,
// otherwise a float32 or int32 scratch block), add src into it atomically, then cast it into
// the output, so 16-bit floats round once and integers wrap like the CPU's.
import { contiguousStrides, registerKernel, type DType, type Tensor } from '@blora/tensor';
import { dtypeCode, layoutArg, tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { withScratch } from './scratch.js';

/** The dtype that scatterAdd / indexAdd accumulate `dtype` in. */
function accumulationDType(dtype: DType): DType {
  const addon = native();
  return addon.dtypeNames[addon.accumulationDType(dtypeCode(dtype))] as DType;
}

/** Seeds an accumulator with `x`, lets `add` add into it, and leaves the sum in `out`. */
function accumulateInto(x: Tensor, out: Tensor, add: (acc: Float64Array) => void): void {
  const addon = native();
  const accDType = accumulationDType(out.dtype);
  if (accDType === out.dtype) {
    addon.copy(tensorArg(x), tensorArg(out));
    add(tensorArg(out));
    return;
  }
  withScratch(accDType, out.numel, (address) => {
    const acc = layoutArg(address, 0, accDType, out.shape, contiguousStrides(out.shape));
    addon.cast(tensorArg(x), acc);
    add(acc);
    addon.cast(acc, tensorArg(out));
  });
}

/** Registers indexSelect, gather, scatterAdd and indexAdd for 'cuda'. */
export function registerIndexingKernels(): void {
  registerKernel('indexSelect', 'cuda', ([x, index], [out], attrs) => {
    runKernel('indexSelect', [x!, index!, out!], () =>
      native().indexSelect(tensorArg(x!), tensorArg(index!), tensorArg(out!), attrs.axis as number));
  });
  registerKernel('gather', 'cuda', ([x, index], [out], attrs) => {
    runKernel('gather', [x!, index!, out!], () =>
      native().gather(tensorArg(x!), tensorArg(index!), tensorArg(out!), attrs.axis as number));
  });
  registerKernel('scatterAdd', 'cuda', ([x, index, src], [out], attrs) => {
    runKernel('scatterAdd', [x!, index!, src!, out!], () =>
      accumulateInto(x!, out!, (acc) => native().scatterAdd(acc, tensorArg(index!), tensorArg(src!), attrs.axis as number)));
  });
  registerKernel('indexAdd', 'cuda', ([x, index, src], [out], attrs) => {
    runKernel('indexAdd', [x!, index!, src!, out!], () =>
      accumulateInto(x!, out!, (acc) => native().indexAdd(acc, tensorArg(index!), tensorArg(src!), attrs.axis as number)));
  });
}

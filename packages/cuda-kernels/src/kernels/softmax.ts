// softmax / logSoftmax along one axis on the cuda device. The row kernel works on dense
// rows; another axis is moved last through a scratch copy, and the result is copied back
// into the output's layout.
import { contiguousStrides, registerKernel, type Tensor } from '@blora/tensor';
import { bufferOf, isDenseLayout, layoutArg, tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { withScratch } from './scratch.js';

function softmaxOnCuda(log: boolean, x: Tensor, out: Tensor, axis: number): void {
  const addon = native();
  if (x.numel === 0) return;
  const rank = x.rank;
  // The softmax axis last; a 0-d tensor is one row of one element.
  const order = rank === 0 ? [] : [...x.shape.keys()].filter((d) => d !== axis).concat([axis]);
  const shape = order.map((d) => x.shape[d]!);
  const strides = order.map((d) => x.strides[d]!);
  const cols = rank === 0 ? 1 : x.shape[axis]!;
  const rows = x.numel / cols;
  const rowsArg = (address: number, offset: number) => layoutArg(address, offset, x.dtype, [rows, cols], [cols, 1]);
  const axisIsLast = order.every((d, i) => d === i);
  const runRows = (inputAddress: number, inputOffset: number): void => {
    if (axisIsLast) {
      // `out` is freshly allocated and dense, so it can be viewed as the same [rows, cols] block.
      addon.softmaxRows(log, rowsArg(inputAddress, inputOffset), rowsArg(bufferOf(out).address, out.offset), rows, cols);
      return;
    }
    // Softmax into a block laid out in the permuted order, then copy it into `out`: read in
    // `out`'s order, element (i0, .., in) sits at the permuted position, so its strides are
    // the block's strides moved back to the original dims.
    withScratch(x.dtype, x.numel, (result) => {
      addon.softmaxRows(log, rowsArg(inputAddress, inputOffset), rowsArg(result, 0), rows, cols);
      const permutedStrides = contiguousStrides(shape);
      const backStrides = new Array<number>(rank);
      order.forEach((d, i) => (backStrides[d] = permutedStrides[i]!));
      addon.copy(layoutArg(result, 0, x.dtype, x.shape, backStrides), tensorArg(out));
    });
  };
  const address = bufferOf(x).address;
  if (isDenseLayout(shape, strides)) {
    runRows(address, x.offset);
    return;
  }
  withScratch(x.dtype, x.numel, (dense) => {
    addon.copy(layoutArg(address, x.offset, x.dtype, shape, strides), layoutArg(dense, 0, x.dtype, shape, contiguousStrides(shape)));
    runRows(dense, 0);
  });
}

/** Registers softmax and logSoftmax for 'cuda'. */
export function registerSoftmaxKernels(): void {
  registerKernel('softmax', 'cuda', ([x], [out], attrs) => {
    runKernel('softmax', [x!, out!], () => softmaxOnCuda(false, x!, out!, attrs.axis as number));
  });
  registerKernel('logSoftmax', 'cuda', ([x], [out], attrs) => {
    runKernel('logSoftmax', [x!, out!], () => softmaxOnCuda(true, x!, out!, attrs.axis as number));
  });
}

// cat, repeatInterleave, avgPool1d and the two maps of their gradients (avgPool1dBackward,
// sumRuns) on the cuda device. cat copies each input into its slice of the output;
// repeatInterleave of a contiguous tensor has a vectorized kernel, any other view is one copy
// from a view of x with a stride-0 repeat dim; the others have their own kernels
// (avgPool1dBackward reads a dense gradient: a strided one is copied first; avgPool1d into
// another dtype casts while it pools).
import { contiguous, contiguousStrides, registerKernel, type Tensor } from '@blora/tensor';
import { bufferOf, layoutArg, tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { withDense } from './dense.js';
import { withScratch } from './scratch.js';

function catOnCuda(inputs: readonly Tensor[], out: Tensor, axis: number): void {
  const addon = native();
  const strides = contiguousStrides(out.shape);
  const address = bufferOf(out).address;
  let start = 0;
  for (const t of inputs) {
    if (t.numel > 0) {
      // The slice of `out` this input fills: its shape, out's strides, shifted along the axis.
      addon.copyInto(tensorArg(t), layoutArg(address, out.offset + start * strides[axis]!, out.dtype, t.shape, strides));
    }
    start += t.shape[axis]!;
  }
}

function repeatInterleaveOnCuda(x: Tensor, out: Tensor, repeats: number, axis: number): void {
  if (out.numel === 0) return;
  if (native().repeatInterleave(tensorArg(x), tensorArg(out), repeats, axis)) return;
  // out viewed as [..., n, repeats, ...] is a dense copy of x with a broadcast repeat dim.
  const shape = [...x.shape.slice(0, axis + 1), repeats, ...x.shape.slice(axis + 1)];
  const strides = [...x.strides.slice(0, axis + 1), 0, ...x.strides.slice(axis + 1)];
  native().copy(
    layoutArg(bufferOf(x).address, x.offset, x.dtype, shape, strides),
    layoutArg(bufferOf(out).address, out.offset, out.dtype, shape, contiguousStrides(shape)),
  );
}

/**
 * avgPool1d into `out`: in x's dtype by the pooling kernels; into another dtype by the pass that
 * casts while it pools (float32 / float64 outputs; others through a float64 temporary).
 */
function avgPool1dOnCuda(x: Tensor, out: Tensor, kernel: number): void {
  const addon = native();
  if (out.dtype === x.dtype) {
    addon.avgPool1d(tensorArg(x), tensorArg(out), kernel);
    return;
  }
  withDense([x], ([dense]) => {
    if (out.dtype === 'float32' || out.dtype === 'float64') {
      addon.poolCast(dense!, tensorArg(out), kernel);
      return;
    }
    withScratch('float64', out.numel, (address) => {
      const wide = layoutArg(address, 0, 'float64', out.shape, contiguousStrides(out.shape));
      addon.poolCast(dense!, wide, kernel);
      addon.cast(wide, tensorArg(out));
    });
  });
}

/** Registers cat, repeatInterleave, avgPool1d, avgPool1dBackward and sumRuns for 'cuda'. */
export function registerJoinKernels(): void {
  registerKernel('cat', 'cuda', (inputs, [out], attrs) => {
    runKernel('cat', [...inputs, out!], () => catOnCuda(inputs, out!, attrs.axis as number));
  });
  registerKernel('repeatInterleave', 'cuda', ([x], [out], attrs) => {
    runKernel('repeatInterleave', [x!, out!], () =>
      repeatInterleaveOnCuda(x!, out!, attrs.repeats as number, attrs.axis as number));
  });
  registerKernel('avgPool1d', 'cuda', ([x], [out], attrs) => {
    runKernel('avgPool1d', [x!, out!], () => avgPool1dOnCuda(x!, out!, attrs.kernel as number));
  });
  registerKernel('sumRuns', 'cuda', ([x], [out], attrs) => {
    runKernel('sumRuns', [x!, out!], () => native().sumRuns(tensorArg(x!), tensorArg(out!), attrs.kernel as number));
  });
  registerKernel('avgPool1dBackward', 'cuda', ([dy], [out], attrs) => {
    if (out!.numel === 0) return;
    const dense = dy!.isContiguous ? dy! : contiguous(dy!);
    try {
      runKernel('avgPool1dBackward', [dense, out!], () => native().avgPool1dBackward(tensorArg(dense), tensorArg(out!), attrs.kernel as number));
    } finally {
      if (dense !== dy) dense.dispose();
    }
  });
}

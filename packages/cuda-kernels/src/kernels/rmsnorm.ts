// rmsNorm and rmsNormBackward on the cuda device. The row kernels read dense rows, so a
// strided x (or dy, rstd) goes through a contiguous scratch copy; the weight is read
// through its stride.
import { registerKernel } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { withDense } from './dense.js';

/** Registers rmsNorm and rmsNormBackward for 'cuda'. */
export function registerRmsNormKernels(): void {
  registerKernel('rmsNorm', 'cuda', ([x, weight], [y, rstd], attrs) => {
    runKernel('rmsNorm', [x!, weight!, y!, rstd!], () =>
      withDense([x!], ([xArg]) =>
        native().rmsNorm(xArg!, tensorArg(weight!), tensorArg(y!), tensorArg(rstd!), attrs.eps as number, attrs.offset as number)));
  });
  registerKernel('rmsNormBackward', 'cuda', ([dy, x, weight, rstd], [dx, dweight], attrs) => {
    runKernel('rmsNormBackward', [dy!, x!, weight!, rstd!, dx!, dweight!], () =>
      withDense([dy!, x!, rstd!], ([dyArg, xArg, rstdArg]) =>
        native().rmsNormBackward(dyArg!, xArg!, tensorArg(weight!), rstdArg!, tensorArg(dx!), tensorArg(dweight!),
          attrs.offset as number, attrs.weightGrad !== false)));
  });
}

// rope on the cuda device: x and the cos/sin tables are read through their strides (x is
// usually a transposed view of a projection), the output is contiguous.
import { registerKernel } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';

/** Registers rope for 'cuda'. */
export function registerRopeKernels(): void {
  registerKernel('rope', 'cuda', ([x, cos, sin], [out], attrs) => {
    runKernel('rope', [x!, cos!, sin!, out!], () =>
      native().rope(tensorArg(x!), tensorArg(cos!), tensorArg(sin!), tensorArg(out!), attrs.inverse === true));
  });
}

// The fused in-place AdamW update on the cuda device. The per-step constants are computed
// here with the same JavaScript expressions as the CPU kernel, so the device sees the same
// float64 values and its per-element arithmetic (float64, fixed order, no FMA) reproduces
// the CPU result bit for bit.
import { registerKernel } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';

/** Registers adamwStep for 'cuda'. */
export function registerOptimKernels(): void {
  registerKernel('adamwStep', 'cuda', ([param, grad, m, v], _outputs, attrs) => {
    const lr = attrs.lr as number;
    const beta1 = attrs.beta1 as number;
    const beta2 = attrs.beta2 as number;
    const step = attrs.step as number;
    const constants = Float64Array.of(
      1 - lr * (attrs.weightDecay as number), // decay
      beta1,
      1 - beta1,
      beta2,
      1 - beta2,
      lr / (1 - beta1 ** step), // step size with the first moment's bias correction
      Math.sqrt(1 - beta2 ** step), // square root of the second moment's bias correction
      attrs.eps as number,
    );
    runKernel('adamwStep', [param!, grad!, m!, v!], () =>
      native().adamwStep(tensorArg(param!), tensorArg(grad!), tensorArg(m!), tensorArg(v!), constants));
  });
}

// Ops that training does not run on the device (variance and logsumexp for reports) are
// computed by the CPU kernel on a host copy and written back: correct on every input, at the
// cost of one round trip per call.
import { dispose, findKernel, registerKernel, Tensor, type KernelFn } from '@blora/tensor';
import { bufferOf } from '../descriptor.js';
import { native } from '../native.js';

/** The ops served through the host until they get device kernels of their own. */
export const HOST_FALLBACK_OPS = ['var', 'logsumexp'] as const;

function throughHost(op: string, cpuKernel: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const hostInputs = inputs.map((t) => Tensor.fromTypedArray(t.toTypedArray(), t.shape, t.dtype, 'cpu'));
    const hostOutputs = outputs.map((t) => Tensor.empty(t.shape, t.dtype, 'cpu'));
    try {
      cpuKernel(hostInputs, hostOutputs, attrs);
      // Outputs are freshly allocated and dense, so their buffers take the host data as is.
      outputs.forEach((t, i) => {
        if (t.numel > 0) native().upload(bufferOf(t).address, hostOutputs[i]!.toTypedArray());
      });
    } catch (e) {
      throw new Error(`${op} (cuda, computed on the host): ${(e as Error).message}`, { cause: e });
    } finally {
      dispose([hostInputs, hostOutputs]);
    }
  };
}

/** Registers the host-computed ops for 'cuda'. */
export function registerHostFallbackKernels(): void {
  for (const op of HOST_FALLBACK_OPS) {
    const cpuKernel = findKernel(op, 'cpu');
    if (cpuKernel) registerKernel(op, 'cuda', throughHost(op, cpuKernel));
  }
}

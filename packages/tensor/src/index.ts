/**
 * @blora/tensor: n-dimensional tensors with dtypes, strided views, broadcasting,
 * a kernel registry per device and a pure-TypeScript CPU backend.
 *
 * @packageDocumentation
 */
import './cpu/index.js';
import { initTensorHooks, Tensor } from './tensor.js';
import { recordOp, runKernel } from './dispatch.js';

// A fresh dense copy on the tensor's own device, run outside autograd's view (it is a temporary).
function denseCopy(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape, t.dtype, t.device);
  runKernel('copy', t.device, [t], [out]);
  return out;
}

initTensorHooks({ denseCopy, record: recordOp });

export { Tensor, setAutogradEngine, type AutogradEngine, type NestedNumbers } from './tensor.js';
export * from './dtype.js';
export * from './half.js';
export * from './shape.js';
export { Storage } from './storage.js';
export {
  registerBackend, getBackend, listDevices, canCaptureGraphs, captureGraph, isCapturingGraph, type Backend, type CapturedGraph,
} from './backend.js';
export {
  registerKernel, findKernel, getKernel, runKernel, listKernels, execute, execute1, recordOp, setOpObserver, commonDevice,
  type Attrs, type KernelFn, type OpObserver, type OpRecord, type OutputSpec,
} from './dispatch.js';
export { tidy, keep, dispose, memoryStats, peakBytes, resetPeakMemory, type MemoryStats } from './memory.js';
export { startOpProfile, stopOpProfile, profileOps, formatOpProfile, type OpProfile, type OpProfileEntry } from './op-profile.js';
export * from './ops/index.js';
export { cpuBackend } from './cpu/backend.js';
export { KernelTemporaries, matmulTransposedInto } from './kernel-temporaries.js';
export * from './philox.js';
export * from './safetensors/index.js';

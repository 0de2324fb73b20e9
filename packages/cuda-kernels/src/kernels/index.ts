// Every kernel the cuda device provides.
import { registerCopyKernels } from './copy.js';
import { registerElementwiseKernels } from './elementwise.js';
import { registerMatmulKernels } from './matmul.js';
import { registerReduceKernels } from './reduce.js';
import { registerSoftmaxKernels } from './softmax.js';

/** Registers all cuda kernels with the tensor package's registry. */
export function registerCudaKernels(): void {
  registerCopyKernels();
  registerElementwiseKernels();
  registerReduceKernels();
  registerSoftmaxKernels();
  registerMatmulKernels();
}

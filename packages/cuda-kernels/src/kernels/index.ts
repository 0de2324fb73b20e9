// Every kernel the cuda device provides.
import { registerAdapterKernels } from './adapter.js';
import { registerAttentionKernels } from './attention.js';
import { registerCopyKernels } from './copy.js';
import { registerCrossEntropyKernels } from './cross-entropy.js';
import { registerElementwiseKernels } from './elementwise.js';
import { registerHostFallbackKernels } from './host-fallback.js';
import { registerIndexingKernels } from './indexing.js';
import { registerJoinKernels } from './join.js';
import { registerMatmulKernels } from './matmul.js';
import { registerOptimKernels } from './optim.js';
import { registerQuantKernels } from './quant.js';
import { registerRandomKernels } from './random.js';
import { registerReduceKernels } from './reduce.js';
import { registerRmsNormKernels } from './rmsnorm.js';
import { registerRopeKernels } from './rope.js';
import { registerSoftmaxKernels } from './softmax.js';

/** Registers all cuda kernels with the tensor package's registry. */
export function registerCudaKernels(): void {
  registerCopyKernels();
  registerElementwiseKernels();
  registerReduceKernels();
  registerSoftmaxKernels();
  registerMatmulKernels();
  registerIndexingKernels();
  registerJoinKernels();
  registerRandomKernels();
  registerOptimKernels();
  registerRmsNormKernels();
  registerRopeKernels();
  registerCrossEntropyKernels();
  registerAttentionKernels();
  registerQuantKernels();
  registerAdapterKernels();
  registerHostFallbackKernels();
}

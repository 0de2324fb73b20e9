/**
 * @blora/cuda-kernels: the 'cuda' device for @blora/tensor, a native addon with its own CUDA
 * kernels. Importing this package registers the device and its kernels when the addon is
 * built and a supported NVIDIA GPU (compute capability 8.0 or newer) is present; otherwise
 * it registers nothing, and `cudaUnavailableReason()` says why.
 *
 * ```ts
 * import { tensor, matmul } from '@blora/tensor';
 * import { cudaAvailable } from '@blora/cuda-kernels';
 * const device = cudaAvailable() ? 'cuda' : 'cpu';
 * const y = matmul(tensor([[1, 2]], { device }), tensor([[3], [4]], { device }));
 * ```
 *
 * @packageDocumentation
 */
import { registerBackend } from '@blora/tensor';
import { cudaBackend } from './backend.js';
import { registerCudaKernels } from './kernels/index.js';
import { cudaAvailable } from './native.js';

if (cudaAvailable()) {
  registerBackend(cudaBackend);
  registerCudaKernels();
}

export { cudaAvailable, cudaUnavailableReason, cudaDeviceInfo, type CudaDeviceInfo, type CudaMemoryInfo } from './native.js';
export { cudaMemoryInfo, emptyCache, synchronize } from './memory.js';
export { setDependentLaunches } from './launches.js';
export { CudaError, type CudaErrorCode } from './errors.js';
export { cudaBackend, DeviceBuffer } from './backend.js';
export {
  avgPool1dBackwardInto, deviceTimePerReplay, matmulInto, quantDequantizeInto, quantMatmulInto, quantMatmulTilesInto,
  setQuantGemmPath, sumRunsInto, type QuantFormatName, type QuantGemmPath,
} from './kernels/quant.js';

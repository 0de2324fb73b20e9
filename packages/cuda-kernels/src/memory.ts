// The device-wide memory and synchronization API.
import { cudaError } from './errors.js';
import { cudaAvailable, cudaUnavailableReason, native, type CudaMemoryInfo } from './native.js';

/** Allocator counters and the device's free/total memory. Throws when CUDA is not available. */
export function cudaMemoryInfo(): CudaMemoryInfo {
  if (!cudaAvailable()) throw new Error(`cudaMemoryInfo: cuda is not available: ${cudaUnavailableReason()}`);
  return native().memoryStats();
}

/**
 * Returns the allocator's cached (free) blocks to the driver, so other processes can use
 * that memory. Memory held by live tensors stays. A no-op without CUDA.
 */
export function emptyCache(): void {
  if (!cudaAvailable()) return;
  try {
    native().emptyCache();
  } catch (e) {
    throw cudaError('cuda: emptyCache', e);
  }
}

/**
 * Waits until every queued kernel and copy has finished; a kernel that failed while running
 * is reported here. A no-op without CUDA.
 */
export function synchronize(): void {
  if (!cudaAvailable()) return;
  try {
    native().synchronize();
  } catch (e) {
    throw cudaError('cuda: synchronize', e);
  }
}

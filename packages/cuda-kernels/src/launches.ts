// How kernels start on the GPU.
import { cudaAvailable, cudaUnavailableReason, native } from './native.js';

/**
 * Whether kernels start as programmatic dependent launches (Hopper and newer): each may start
 * while the kernel before it in the stream finishes, and waits for it before touching memory, so
 * the launch gap between them is hidden. It matters most for token-by-token generation, where
 * most kernels are about as short as that gap. On by default (set `BLORA_CUDA_DEPENDENT_LAUNCH=0`
 * to start with it off); this sets it for the rest of the process (graphs recorded earlier keep
 * how they were recorded) and returns the previous setting. Results do not depend on it.
 */
export function setDependentLaunches(on: boolean): boolean {
  if (!cudaAvailable()) throw new Error(`setDependentLaunches: cuda is not available: ${cudaUnavailableReason()}`);
  return native().setDependentLaunches(on);
}

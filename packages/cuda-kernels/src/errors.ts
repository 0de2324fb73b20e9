// Errors raised by the cuda device carry the native error code and the op's tensors.
import type { Tensor } from '@blora/tensor';

/** Error codes set by the native addon. */
export type CudaErrorCode = 'CUDA_ERROR' | 'CUDA_OUT_OF_MEMORY' | 'CUDA_UNAVAILABLE' | 'INVALID_ARGUMENT';

/** A failure on the cuda device: a CUDA runtime error, out of memory, or arguments a kernel rejected. */
export class CudaError extends Error {
  /** What kind of failure this was. */
  readonly code: CudaErrorCode | undefined;
  /** The CUDA runtime's error name (e.g. 'cudaErrorIllegalAddress') for CUDA_ERROR. */
  readonly cudaError: string | undefined;

  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'CudaError';
    const native = cause as { code?: unknown; cudaError?: unknown } | null;
    this.code = typeof native?.code === 'string' ? (native.code as CudaErrorCode) : undefined;
    this.cudaError = typeof native?.cudaError === 'string' ? native.cudaError : undefined;
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Wraps a native failure, prefixing `context` (e.g. 'cuda add (float32[2, 3], ...)'). */
export function cudaError(context: string, cause: unknown): CudaError {
  return new CudaError(`${context}: ${messageOf(cause)}`, cause);
}

/**
 * Runs the native calls of one kernel; a failure becomes a CudaError naming the op and the
 * dtypes and shapes of its tensors (inputs, then outputs).
 */
export function runKernel(op: string, tensors: readonly Tensor[], calls: () => void): void {
  try {
    calls();
  } catch (e) {
    throw cudaError(`cuda ${op} (${tensors.map((t) => t.describe()).join(', ')})`, e);
  }
}

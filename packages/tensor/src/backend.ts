// A backend owns the memory of one device kind and its kernels' launch context.
// The CPU backend lives in this package; others (cuda) register themselves at run time.
import type { DType, TypedArray } from './dtype.js';

/**
 * What a device must provide so tensors can live on it. Kernels are registered
 * separately (see `registerKernel`), op by op.
 */
export interface Backend {
  /** Device name used in `tensor.to(name)` and in the kernel registry, e.g. `'cpu'`, `'cuda'`. */
  readonly name: string;
  /** Allocates uninitialised memory for `numel` elements of `dtype`; returns an opaque handle. */
  allocate(dtype: DType, numel: number): unknown;
  /** Releases a handle returned by `allocate`/`fromHost`. Called once per storage. */
  free(handle: unknown, dtype: DType, numel: number): void;
  /** Creates device memory holding a copy of `data` (raw bits for half types). */
  fromHost(dtype: DType, data: TypedArray): unknown;
  /** Copies `numel` elements of device memory back into a new host typed array. */
  toHost(handle: unknown, dtype: DType, numel: number): TypedArray;
  /** Blocks until queued work is done (a no-op on synchronous backends). */
  synchronize(): void;
}

const backends = new Map<string, Backend>();

/** Makes a device available. Re-registering a name replaces the previous backend. */
export function registerBackend(backend: Backend): void {
  backends.set(backend.name, backend);
}

/** The backend for `device`; throws listing the registered devices when it is unknown. */
export function getBackend(device: string): Backend {
  const b = backends.get(device);
  if (!b) {
    throw new Error(`device '${device}' is not registered; available: ${[...backends.keys()].join(', ')}` +
      (device === 'cuda' ? " (import '@blora/cuda-kernels' on a machine with an NVIDIA GPU)" : ''));
  }
  return b;
}

/** Names of all registered devices. */
export function listDevices(): string[] {
  return [...backends.keys()];
}

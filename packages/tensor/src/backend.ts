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
  /**
   * Optional: records the device work `run` queues as a graph instead of running it, to be
   * replayed later at the cost of one launch (see `captureGraph`). Backends without it cannot.
   */
  captureGraph?(run: () => void): CapturedGraph;
}

/**
 * Device work recorded once (`captureGraph`) and replayed as a whole: every replay runs the same
 * kernels on the same memory, so what changes between replays must be written into that memory
 * first (a position, a token id), not passed as a kernel argument. The memory the recorded work
 * used stays reserved for the graph until `dispose()`.
 */
export interface CapturedGraph {
  /** Queues the recorded work once more. */
  replay(): void;
  /** Releases the graph and the memory held for it. */
  dispose(): void;
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

/** Whether `device` can record device work as a graph (`captureGraph`). */
export function canCaptureGraphs(device: string): boolean {
  return typeof getBackend(device).captureGraph === 'function';
}

/**
 * Records the device work `run` queues on `device` as a graph and returns it without having run
 * it: tensors that `run` creates hold memory the replays write, and their values are those of a
 * replay only after one. `run` must not read device values back to the host nor upload host data
 * that changes between replays. Throws when the device cannot capture (`canCaptureGraphs`).
 */
export function captureGraph(device: string, run: () => void): CapturedGraph {
  const backend = getBackend(device);
  if (typeof backend.captureGraph !== 'function') throw new Error(`captureGraph: device '${device}' cannot record graphs`);
  if (capturing) throw new Error('captureGraph: a capture is already running');
  capturing = true;
  try {
    return backend.captureGraph(run);
  } finally {
    capturing = false;
  }
}

let capturing = false;

/**
 * Whether a `captureGraph` is recording. Ops then skip the checks that read device values on the
 * host (index ranges): the values a replay sees are written later, and checking them is the
 * caller's part (as `DecodeStep` checks its token id and position before each replay).
 */
export function isCapturingGraph(): boolean {
  return capturing;
}

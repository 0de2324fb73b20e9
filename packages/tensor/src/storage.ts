// Storage: one allocation on one device, shared by every view of it.
import { getBackend, type Backend } from './backend.js';
import { itemSize, type DType } from './dtype.js';
import { trackStorage, trackTensor } from './memory.js';

// What freeing a storage takes, kept apart from the Storage so that a finalizer can hold it.
interface Allocation {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly numel: number;
  readonly handle: unknown;
  /** Live tensors that use the storage. */
  refs: number;
  released: boolean;
}

// Frees the memory of a storage that was garbage-collected while tensors that were never disposed
// still used it. One registration a storage (a view adds none), never unregistered: a released
// allocation is skipped. (Registering every Tensor, and unregistering it on dispose, made a view
// about twice as costly on the host.)
const finalizer = new FinalizationRegistry<Allocation>((a) => {
  if (a.released) return;
  trackTensor(a.backend.name, -a.refs);
  releaseAllocation(a);
});

function releaseAllocation(a: Allocation): void {
  a.released = true;
  trackStorage(a.backend.name, -a.numel * itemSize(a.dtype));
  a.backend.free(a.handle, a.dtype, a.numel);
}

/** A reference-counted block of device memory. Views share their base's storage. */
export class Storage {
  private readonly allocation: Allocation;

  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    /** Capacity in elements. */
    readonly numel: number,
    /** Backend-specific handle: a typed array on the CPU. */
    readonly handle: unknown,
  ) {
    trackStorage(backend.name, this.byteLength);
    this.allocation = { backend, dtype, numel, handle, refs: 0, released: false };
    finalizer.register(this, this.allocation);
  }

  /** Number of live tensors that use this storage. */
  get refs(): number {
    return this.allocation.refs;
  }

  set refs(n: number) {
    this.allocation.refs = n;
  }

  /** Size in bytes. */
  get byteLength(): number {
    return this.numel * itemSize(this.dtype);
  }

  /** True once the memory has been handed back to the backend. */
  get isReleased(): boolean {
    return this.allocation.released;
  }

  /** Drops one reference; the memory is freed when none remain. */
  release(): void {
    const a = this.allocation;
    if (a.released) return;
    a.refs -= 1;
    if (a.refs <= 0) releaseAllocation(a);
  }

  /** Allocates uninitialised storage on `device`. */
  static allocate(device: string, dtype: DType, numel: number): Storage {
    const backend = getBackend(device);
    return new Storage(backend, dtype, numel, backend.allocate(dtype, numel));
  }
}

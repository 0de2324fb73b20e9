// Storage: one allocation on one device, shared by every view of it.
import { getBackend, type Backend } from './backend.js';
import { itemSize, type DType } from './dtype.js';
import { trackStorage } from './memory.js';

/** A reference-counted block of device memory. Views share their base's storage. */
export class Storage {
  /** Number of live tensors that use this storage. */
  refs = 0;
  private released = false;

  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    /** Capacity in elements. */
    readonly numel: number,
    /** Backend-specific handle: a typed array on the CPU. */
    readonly handle: unknown,
  ) {
    trackStorage(backend.name, this.byteLength);
  }

  /** Size in bytes. */
  get byteLength(): number {
    return this.numel * itemSize(this.dtype);
  }

  /** True once the memory has been handed back to the backend. */
  get isReleased(): boolean {
    return this.released;
  }

  /** Drops one reference; the memory is freed when none remain. */
  release(): void {
    if (this.released) return;
    this.refs -= 1;
    if (this.refs <= 0) {
      this.released = true;
      trackStorage(this.backend.name, -this.byteLength);
      this.backend.free(this.handle, this.dtype, this.numel);
    }
  }

  /** Allocates uninitialised storage on `device`. */
  static allocate(device: string, dtype: DType, numel: number): Storage {
    const backend = getBackend(device);
    return new Storage(backend, dtype, numel, backend.allocate(dtype, numel));
  }
}

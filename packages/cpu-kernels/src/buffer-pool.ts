// Recycling of CPU tensor buffers. Every op allocates its outputs; a fresh typed array is
// zeroed by the engine, its pages are faulted in on first touch, and its memory counts as
// external memory that drives V8's garbage collections. A training step allocates hundreds of
// such buffers and the next step needs the very same sizes again, so buffers released by
// `dispose` (or `tidy`) are kept, per dtype and size, and handed out again instead of
// allocating. They are handed out as they are: a backend's `allocate` returns uninitialised
// memory (as `empty` documents), and every kernel writes all of its outputs.
import { getBackend, registerBackend, type Backend, type DType, type TypedArray } from '@blora/tensor';

/** Buffers shorter than this many elements are left to the engine (cheap to allocate). */
const MIN_ELEMENTS = 256;

/** What the pool holds and has done. */
export interface BufferPoolStats {
  /** Most bytes the pool keeps (0: off). */
  capacityBytes: number;
  /** Bytes of released buffers waiting to be reused. */
  pooledBytes: number;
  /** Allocations served from the pool. */
  reused: number;
  /** Allocations of pool-sized buffers the pool could not serve. */
  allocated: number;
}

/** Released buffers by dtype and length, within a byte capacity. */
export class BufferPool {
  private readonly free = new Map<DType, Map<number, TypedArray[]>>();
  private pooledBytes = 0;
  private reused = 0;
  private allocated = 0;

  constructor(private capacityBytes: number) {}

  /** A released buffer of `numel` elements of `dtype` (its old contents left as they are), or null when the pool has none. */
  take(dtype: DType, numel: number): TypedArray | null {
    if (numel < MIN_ELEMENTS || this.capacityBytes === 0) return null;
    const buffer = this.free.get(dtype)?.get(numel)?.pop();
    if (!buffer) {
      this.allocated += 1;
      return null;
    }
    this.pooledBytes -= buffer.byteLength;
    this.reused += 1;
    return buffer;
  }

  /** Keeps a released buffer for reuse when it owns its memory and fits in the capacity. */
  give(buffer: TypedArray, dtype: DType): void {
    const owned = buffer.byteOffset === 0 && buffer.buffer.byteLength === buffer.byteLength;
    if (!owned || buffer.length < MIN_ELEMENTS || this.pooledBytes + buffer.byteLength > this.capacityBytes) return;
    let bySize = this.free.get(dtype);
    if (!bySize) this.free.set(dtype, (bySize = new Map()));
    let list = bySize.get(buffer.length);
    if (!list) bySize.set(buffer.length, (list = []));
    list.push(buffer);
    this.pooledBytes += buffer.byteLength;
  }

  /** Changes the capacity; a smaller one drops buffers (0 empties the pool and turns it off). */
  resize(capacityBytes: number): void {
    this.capacityBytes = capacityBytes;
    if (this.pooledBytes <= capacityBytes) return;
    this.free.clear();
    this.pooledBytes = 0;
  }

  /** Current figures. */
  stats(): BufferPoolStats {
    return { capacityBytes: this.capacityBytes, pooledBytes: this.pooledBytes, reused: this.reused, allocated: this.allocated };
  }
}

// Marks a backend installed here, so that a second copy of this package reuses its pool: two
// pools around one backend would both keep a released buffer and hand it out twice.
const POOL = Symbol.for('@blora/cpu-kernels/buffer-pool');
type PooledBackend = Backend & { [POOL]?: BufferPool };

/**
 * Registers a 'cpu' backend that allocates through `pool` and hands released buffers to it,
 * delegating everything else to the backend registered now. Returns the pool in use (when a
 * pool is installed already, that one, resized to `pool`'s capacity).
 */
export function installBufferPool(pool: BufferPool): BufferPool {
  const base: PooledBackend = getBackend('cpu');
  const existing = base[POOL];
  if (existing) {
    existing.resize(pool.stats().capacityBytes);
    return existing;
  }
  const pooled: PooledBackend = {
    [POOL]: pool,
    name: base.name,
    allocate: (dtype, numel) => pool.take(dtype, numel) ?? base.allocate(dtype, numel),
    free: (handle, dtype, numel) => {
      base.free(handle, dtype, numel);
      pool.give(handle as TypedArray, dtype);
    },
    fromHost: (dtype, data) => base.fromHost(dtype, data),
    toHost: (handle, dtype, numel) => base.toHost(handle, dtype, numel),
    synchronize: () => base.synchronize(),
  };
  registerBackend(pooled);
  return pool;
}

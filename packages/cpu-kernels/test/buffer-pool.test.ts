// The pool of released CPU tensor buffers: what it keeps, what it hands out (never to two
// tensors at once), its capacity, and the backend it installs.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BufferPool, installBufferPool } from '../src/buffer-pool.js';
import { NATIVE } from './helpers.js';

describe('BufferPool', () => {
  it('hands a released buffer out again for the same dtype and length', () => {
    const pool = new BufferPool(1 << 20);
    expect(pool.take('float32', 1000)).toBeNull();
    const buffer = new Float32Array(1000).fill(7);
    pool.give(buffer, 'float32');
    expect(pool.take('float32', 999)).toBeNull();
    expect(pool.take('int32', 1000)).toBeNull();
    expect(pool.take('float32', 1000)).toBe(buffer);
    expect(pool.take('float32', 1000)).toBeNull();
    expect(pool.stats()).toEqual({ capacityBytes: 1 << 20, pooledBytes: 0, reused: 1, allocated: 4 });
  });

  it('keeps only buffers that own their memory, are not tiny and fit in the capacity', () => {
    const pool = new BufferPool(8000);
    pool.give(new Float32Array(100), 'float32'); // tiny: left to the engine
    pool.give(new Float32Array(4000).subarray(0, 1000), 'float32'); // a view of a larger buffer
    pool.give(new Float32Array(new ArrayBuffer(8000), 4, 1000), 'float32'); // a view at an offset
    expect(pool.stats().pooledBytes).toBe(0);
    pool.give(new Float32Array(1000), 'float32');
    pool.give(new Float32Array(1000), 'float32');
    pool.give(new Float32Array(1000), 'float32'); // over the capacity of 8000 bytes
    expect(pool.stats().pooledBytes).toBe(8000);
  });

  it('resize to a smaller capacity drops the buffers; 0 turns the pool off', () => {
    const pool = new BufferPool(1 << 20);
    pool.give(new Float64Array(1000), 'float64');
    pool.resize(4000);
    expect(pool.stats()).toMatchObject({ capacityBytes: 4000, pooledBytes: 0 });
    pool.resize(0);
    pool.give(new Float64Array(1000), 'float64');
    expect(pool.take('float64', 1000)).toBeNull();
  });
});

afterEach(() => {
  vi.unstubAllEnvs();
});

describe.skipIf(!NATIVE)('the pooled cpu backend', () => {
  it('reuses the buffers of disposed tensors, never for two live tensors, and ops write all of them', async () => {
    vi.resetModules();
    const t = await import('@blora/tensor');
    const pkg = await import('../src/index.js');
    const before = pkg.bufferPoolStats()!;
    const a = t.full([64, 32], 3);
    const buffer = a.storage.handle;
    a.dispose();
    expect(pkg.bufferPoolStats()!.pooledBytes).toBe(before.pooledBytes + 64 * 32 * 4);
    const b = t.empty([32, 64]);
    expect(b.storage.handle).toBe(buffer);
    const c = t.empty([32, 64]);
    expect(c.storage.handle).not.toBe(buffer);
    b.dispose();
    // A recycled buffer still holds the old values; the op that gets it overwrites them all.
    const z = t.zeros([64, 32]);
    expect(z.storage.handle).toBe(buffer);
    expect(Array.from(z.toTypedArray()).every((v) => v === 0)).toBe(true);
    // tidy releases its intermediates into the pool too.
    const kept = t.tidy(() => t.add(t.full([2048], 1), t.full([2048], 2)));
    expect(pkg.bufferPoolStats()!.pooledBytes).toBeGreaterThanOrEqual(2 * 2048 * 4);
    expect(kept.toArray()).toEqual(new Array(2048).fill(3));
    const stats = pkg.bufferPoolStats()!;
    expect(stats.reused).toBeGreaterThan(before.reused);
    expect(pkg.cpuKernelsInfo()).toMatchObject({ native: true, bufferPoolMiB: 1024 });
    pkg.configureCpuKernels({ bufferPoolMiB: 0 });
    expect(pkg.bufferPoolStats()).toMatchObject({ capacityBytes: 0, pooledBytes: 0 });
    expect(pkg.cpuKernelsInfo()).toMatchObject({ bufferPoolMiB: 0 });
  });

  it('a second installation reuses the first pool instead of wrapping it', async () => {
    vi.resetModules();
    const t = await import('@blora/tensor');
    await import('../src/index.js');
    const first = installBufferPool(new BufferPool(1 << 20));
    const second = installBufferPool(new BufferPool(2 << 20));
    expect(second).toBe(first);
    expect(first.stats().capacityBytes).toBe(2 << 20);
    const a = t.empty([1000]);
    a.dispose();
    // With two pools around one backend, both would keep the buffer and hand it out twice.
    const b = t.empty([1000]);
    const c = t.empty([1000]);
    expect(b.storage.handle).not.toBe(c.storage.handle);
  });

  it('BLORA_CPU_BUFFER_POOL_MIB sets the capacity; BLORA_CPU_KERNELS=off installs no pool', async () => {
    vi.resetModules();
    vi.stubEnv('BLORA_CPU_BUFFER_POOL_MIB', '16');
    let pkg = await import('../src/index.js');
    expect(pkg.bufferPoolStats()).toMatchObject({ capacityBytes: 16 * 2 ** 20 });
    vi.resetModules();
    vi.stubEnv('BLORA_CPU_KERNELS', 'off');
    pkg = await import('../src/index.js');
    expect(pkg.bufferPoolStats()).toBeNull();
  });
});

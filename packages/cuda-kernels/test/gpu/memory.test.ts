// Memory stays flat across many ops: every intermediate of a tidy scope goes back to the
// caching allocator, and once warmed up no op calls cudaMalloc again.
import {
  add, cast, clamp, exp, gt, matmul, maximum, mean, memoryStats, mul, softmax, sum, tidy, transpose, where, type Tensor,
} from '@blora/tensor';
import { describe, expect, it } from 'vitest';
import { cudaAvailable, cudaMemoryInfo, emptyCache } from '@blora/cuda-kernels';
import { makeTensor, valuesFor } from './helpers.js';

/** A chain touching every kernel family, including the ones that use scratch memory. */
function step(x: Tensor, w: Tensor): Tensor {
  const h = matmul(x, transpose(w));
  const a = softmax(maximum(h, 0), 0);
  const b = clamp(exp(mul(a, 0.5)), -1, 2);
  const c = where(gt(b, 1), b, add(b, 1));
  const s = sum(cast(c, 'bfloat16'), [0]);
  return mean(add(cast(s, 'float32'), sum(transpose(c), [1])), [0]);
}

describe.skipIf(!cudaAvailable())('cuda memory', () => {
  it('keeps allocated bytes and cudaMalloc calls flat over many ops in tidy', () => {
    const x = makeTensor(valuesFor('float32', 33 * 70, 1), [33, 70], 'float32', 'cuda', 'contiguous');
    const w = makeTensor(valuesFor('float32', 45 * 70, 2), [45, 70], 'float32', 'cuda', 'contiguous');
    tidy(() => step(x, w).item()); // warm up the cache
    const before = cudaMemoryInfo();
    const tracked = memoryStats('cuda');
    const results: number[] = [];
    for (let i = 0; i < 50; i++) results.push(tidy(() => step(x, w).item()));
    const after = cudaMemoryInfo();
    // The loop runs synchronously, so no finalizer frees anything meanwhile: the counts are exact.
    expect(after.allocatedBytes).toBe(before.allocatedBytes);
    expect(after.requestedBytes).toBe(before.requestedBytes);
    expect(after.liveBlocks).toBe(before.liveBlocks);
    expect(after.cudaMallocCalls).toBe(before.cudaMallocCalls);
    expect(after.cacheHits).toBeGreaterThan(before.cacheHits + 50 * 10);
    expect(memoryStats('cuda')).toEqual(tracked);
    expect(new Set(results).size).toBe(1); // same inputs, same answer every time
    x.dispose();
    w.dispose();
    const released = cudaMemoryInfo();
    expect(released.requestedBytes).toBe(after.requestedBytes - (33 + 45) * 70 * 4);
    expect(released.allocatedBytes).toBeLessThanOrEqual(after.allocatedBytes - (33 + 45) * 70 * 4);
    emptyCache();
    const emptied = cudaMemoryInfo();
    expect(emptied.cachedBytes).toBe(0);
    expect(emptied.reservedBytes).toBe(emptied.allocatedBytes);
  });
});

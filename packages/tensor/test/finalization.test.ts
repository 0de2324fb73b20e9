// Memory of tensors dropped without dispose(): freed when the collector finds their storage.
import { describe, expect, it } from 'vitest';
import { memoryStats, permute, reshape, zeros } from '@blora/tensor';

const collect = (globalThis as { gc?: () => void }).gc;

/** Collects garbage until `done()` or 20 rounds; finalizers run in tasks after a collection. */
async function collectUntil(done: () => boolean): Promise<void> {
  for (let round = 0; round < 20 && !done(); round++) {
    collect!();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

describe('tensors garbage-collected without dispose()', () => {
  it('needs the collector exposed (vitest.config.ts runs the tests with --expose-gc)', () => {
    expect(typeof collect).toBe('function');
  });

  it('free their storage, counted once per storage however many views used it', async () => {
    const before = memoryStats();
    (() => {
      // A storage of 4 KB and three tensors on it (two views), none disposed, none reachable after this.
      const base = zeros([32, 32]);
      reshape(base, [1024]);
      permute(base, [1, 0]);
    })();
    const during = memoryStats();
    expect(during.liveTensors - before.liveTensors).toBe(3);
    expect(during.bytes - before.bytes).toBe(4096);
    await collectUntil(() => memoryStats().bytes === before.bytes);
    const after = memoryStats();
    expect(after.bytes).toBe(before.bytes);
    expect(after.liveTensors).toBe(before.liveTensors);
  });

  it('leave a storage that a live tensor still uses alone', async () => {
    const kept = zeros([16]);
    (() => {
      reshape(kept, [4, 4]);
    })();
    const bytes = memoryStats().bytes;
    await collectUntil(() => false);
    expect(memoryStats().bytes).toBe(bytes);
    expect(Array.from(kept.toFloat64Array())).toEqual(new Array(16).fill(0));
    kept.dispose();
  });
});

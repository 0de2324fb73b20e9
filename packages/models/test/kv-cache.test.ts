// The KV cache on its own: keys and values written in place into buffers that grow, held as
// views, equal to the concatenation of everything appended; the gradient path through cat.
import { describe, expect, it } from 'vitest';
import { memoryStats, tidy, type Tensor } from '@blora/tensor';
import { randomTensor } from '@blora/tensor/testing';
import { KVCache } from '../src/index.js';

let seed = 40;
const rand = (shape: number[], nonContiguous = false) => randomTensor(shape, { seed: seed++, dtype: 'float32', nonContiguous });

/** Plain-array concatenation along axis 2 of [B, H, T, D] tensors (the reference). */
function joined(parts: Tensor[]): number[] {
  const [b, h, , d] = parts[0]!.shape as number[];
  const out: number[] = [];
  for (let i = 0; i < b! * h!; i++) {
    for (const p of parts) {
      const t = p.shape[2]!;
      const values = p.toFloat64Array();
      out.push(...values.subarray(i * t * d!, (i + 1) * t * d!));
    }
  }
  return out;
}

describe('KVCache', () => {
  it('holds every appended position across growth, with keys and values of any layout', () => {
    const cache = new KVCache(2);
    const keys: Tensor[][] = [[], []];
    const values: Tensor[][] = [[], []];
    // 5 + 1 x 12 + 9 positions: the buffers start at 16 and grow twice.
    for (const t of [5, ...new Array<number>(12).fill(1), 9]) {
      for (let layer = 0; layer < 2; layer++) {
        const k = rand([2, 3, t, 4], t % 2 === 1);
        const v = rand([2, 3, t, 4]);
        keys[layer]!.push(k);
        values[layer]!.push(v);
        const held = cache.append(layer, k, v);
        expect(held.k.shape).toEqual([2, 3, keys[layer]!.reduce((n, p) => n + p.shape[2]!, 0), 4]);
        expect(Array.from(held.k.toFloat64Array())).toEqual(joined(keys[layer]!));
        expect(Array.from(held.v.toFloat64Array())).toEqual(joined(values[layer]!));
      }
    }
    expect(cache.length).toBe(26);
    expect(cache.capacity(0)).toBeGreaterThanOrEqual(26);
    expect(cache.get(1)!.k.storage.numel).toBe(2 * 3 * cache.capacity(1) * 4);
    cache.dispose();
    expect(cache.length).toBe(0);
    expect(cache.get(0)).toBeNull();
  });

  it('with a capacity up front, writes every pass into the same buffers', () => {
    const cache = new KVCache(1, { capacity: 40 });
    cache.append(0, rand([1, 2, 7, 8]), rand([1, 2, 7, 8]));
    const storage = cache.get(0)!.k.storage;
    for (let i = 0; i < 30; i++) cache.append(0, rand([1, 2, 1, 8]), rand([1, 2, 1, 8]));
    expect(cache.get(0)!.k.storage).toBe(storage);
    expect(cache.capacity(0)).toBe(40);
    cache.dispose();
  });

  it('keeps what it holds past tidy scopes and releases all of it on dispose', () => {
    const before = memoryStats();
    const cache = new KVCache(3);
    for (let step = 0; step < 20; step++) {
      tidy(() => {
        for (let layer = 0; layer < 3; layer++) cache.append(layer, rand([1, 2, step === 0 ? 4 : 1, 8]), rand([1, 2, step === 0 ? 4 : 1, 8]));
      });
    }
    // Per layer: two buffers and the two views of them.
    expect(memoryStats().liveTensors - before.liveTensors).toBe(3 * 4);
    expect(memoryStats().liveStorages - before.liveStorages).toBe(3 * 2);
    cache.dispose();
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveStorages).toBe(before.liveStorages);
    expect(memoryStats().bytes).toBe(before.bytes);
  });

  it('joins keys that require a gradient with cat, so the tape records them', () => {
    const cache = new KVCache(1);
    const first = rand([1, 2, 3, 4]);
    cache.append(0, first, rand([1, 2, 3, 4]));
    const k = rand([1, 2, 2, 4]);
    k.requiresGrad = true;
    const held = cache.append(0, k, rand([1, 2, 2, 4]));
    expect(held.k.requiresGrad).toBe(true);
    expect(Array.from(held.k.toFloat64Array())).toEqual(joined([first, k]));
    expect(cache.capacity(0)).toBe(0);
    // A later pass without a gradient still sees a held key that needs one: cat again.
    const after = cache.append(0, rand([1, 2, 1, 4]), rand([1, 2, 1, 4]));
    expect(after.k.shape[2]).toBe(6);
    cache.dispose();
  });

  it('refuses keys of another shape or dtype, a bad layer and a bad capacity', () => {
    const cache = new KVCache(2);
    cache.append(0, rand([1, 2, 3, 4]), rand([1, 2, 3, 4]));
    expect(() => cache.append(0, rand([1, 3, 1, 4]), rand([1, 3, 1, 4]))).toThrow(/holds keys .*cannot append/);
    expect(() => cache.append(2, rand([1, 2, 1, 4]), rand([1, 2, 1, 4]))).toThrow(/layer 2 is out of range/);
    expect(() => new KVCache(1, { capacity: -1 })).toThrow(/capacity must be a non-negative integer/);
    cache.dispose();
  });
});

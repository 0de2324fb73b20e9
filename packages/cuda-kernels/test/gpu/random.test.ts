// The random ops on cuda give the CPU's numbers for the same (seed, offset): uniform, integer
// and Bernoulli values bit for bit, normal values to the last float64 bits of log and cos.
// The words are also checked against the Philox-4x32-10 block function with the mapping of
// ops/random.ts written out here.
import { bernoulli, Generator, philox4x32, rand, randint, randn, seedKey, type DType, type Seed, type Tensor } from '@blora/tensor';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';

/** The random word `j` of counter block `block` under `seed`. */
function word(seed: Seed, block: number, j: number): number {
  const key = seedKey(seed);
  return philox4x32([block >>> 0, Math.floor(block / 4294967296), 0, 0], key)[j]!;
}

/** Storage bits (or values for float32/float64/integers) of a tensor, for exact comparisons. */
function bits(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

/** Draws with `draw` on cuda and on the CPU from generators in the same state; returns both. */
function both(draw: (device: string, generator: Generator) => Tensor, seed: Seed, offset = 0): [Tensor, Tensor] {
  const make = () => {
    const g = new Generator(seed);
    g.setState({ seed: String(seed), offset });
    return g;
  };
  const gCuda = make();
  const gCpu = make();
  const pair: [Tensor, Tensor] = [draw('cuda', gCuda), draw('cpu', gCpu)];
  expect(gCuda.offset).toBe(gCpu.offset);
  return pair;
}

function disposeAll(ts: readonly Tensor[]): void {
  for (const t of ts) t.dispose();
}

// Seeds with a high key word, and offsets past 2^32 blocks (the counter's second word).
const STREAMS: [Seed, number][] = [[0, 0], [12345, 7], [2n ** 40n + 99n, 3], [7, 2 ** 32 + 5]];

describe.skipIf(!cudaAvailable())('random ops on cuda', () => {
  it('rand is bit-identical to the CPU for every float dtype and the specified words', () => {
    for (const [seed, offset] of STREAMS) {
      for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as DType[]) {
        for (const shape of [[1], [3, 337], [1001]]) {
          const [c, h] = both((device, generator) => rand(shape, { device, dtype, generator }), seed, offset);
          expect(c.device).toBe('cuda');
          expect(bits(c)).toEqual(bits(h));
          if (dtype === 'float64') {
            const values = c.toFloat64Array();
            for (const i of [0, 1, 2, 3, 4, values.length - 1].filter((j) => j < values.length)) {
              expect(values[i]).toBe((word(seed, offset + Math.floor(i / 4), i % 4) >>> 8) * 2 ** -24);
            }
          }
          disposeAll([c, h]);
        }
      }
    }
  });

  it('randint is bit-identical for int32, int8 and uint8, including the full 2^32 range', () => {
    const cases: [number, number, DType][] = [[0, 10, 'int32'], [-5, 1000003, 'int32'], [-(2 ** 31), 2 ** 31, 'int32'],
      [-128, 128, 'int8'], [3, 7, 'int8'], [0, 256, 'uint8'], [200, 201, 'uint8']];
    for (const [seed, offset] of STREAMS) {
      for (const [low, high, dtype] of cases) {
        const [c, h] = both((device, generator) => randint(low, high, [5, 99], { device, dtype, generator }), seed, offset);
        expect(bits(c)).toEqual(bits(h));
        const values = c.toFloat64Array();
        const range = high - low;
        const w = word(seed, offset, 1);
        const expected = range === 2 ** 32 ? low + w : low + Math.floor((w * range) / 2 ** 32);
        expect(values[1]).toBe(expected);
        expect(values.every((v) => v >= low && v < high)).toBe(true);
        disposeAll([c, h]);
      }
    }
  });

  it('bernoulli is bit-identical for several p and dtypes, and equals rand < p', () => {
    for (const [seed, offset] of STREAMS) {
      for (const p of [0, 0.3, 0.5, 1, 1 / 3]) {
        for (const dtype of ['uint8', 'float32', 'bfloat16', 'int32'] as DType[]) {
          const [c, h] = both((device, generator) => bernoulli(p, [777], { device, dtype, generator }), seed, offset);
          expect(bits(c)).toEqual(bits(h));
          const [u] = both((device, generator) => rand([777], { device, dtype: 'float64', generator }), seed, offset);
          const uv = u.toFloat64Array();
          expect(Array.from(c.toFloat64Array())).toEqual(Array.from(uv, (x) => (x < p ? 1 : 0)));
          disposeAll([c, h, u]);
        }
      }
    }
  });

  it('randn matches the CPU to float64 rounding (float32: nearly always the same bits)', () => {
    for (const [seed, offset] of STREAMS) {
      for (const dtype of ['float32', 'float64', 'bfloat16'] as DType[]) {
        const [c, h] = both((device, generator) => randn([4001], { device, dtype, generator }), seed, offset);
        const cv = c.toFloat64Array();
        const hv = h.toFloat64Array();
        let same = 0;
        for (let i = 0; i < cv.length; i++) {
          const tol = dtype === 'float64' ? 1e-14 : dtype === 'float32' ? 2 ** -23 : 2 ** -7;
          expect(Math.abs(cv[i]! - hv[i]!)).toBeLessThanOrEqual(tol * Math.abs(hv[i]!) + 1e-300);
          if (cv[i] === hv[i]) same++;
        }
        if (dtype !== 'float64') expect(same).toBeGreaterThanOrEqual(cv.length - 2);
        // Box-Muller on the specified words, evaluated here.
        const a = word(seed, offset, 2);
        const b = word(seed, offset, 3);
        const z = Math.sqrt(-2 * Math.log(((a >>> 8) + 1) * 2 ** -24)) * Math.cos(2 * Math.PI * (b >>> 8) * 2 ** -24);
        if (dtype === 'float64') expect(Math.abs(cv[1]! - z)).toBeLessThanOrEqual(1e-14 * Math.abs(z));
        disposeAll([c, h]);
      }
    }
  });

  it('a fixed seed draws the same numbers on every call, and empty shapes draw nothing', () => {
    const a = rand([50], { device: 'cuda', seed: 5 });
    const b = rand([50], { device: 'cuda', seed: 5 });
    expect(bits(a)).toEqual(bits(b));
    const e = randn([0, 3], { device: 'cuda', seed: 5 });
    expect(e.numel).toBe(0);
    disposeAll([a, b, e]);
  });
});

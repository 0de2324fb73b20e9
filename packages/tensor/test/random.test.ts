import { afterEach, describe, expect, it } from 'vitest';
import {
  bernoulli, defaultGenerator, Generator, manualSeed, mulhi32, normalizeSeed, philox4x32, philoxBlocks,
  rand, randint, randn, seedKey, setOpObserver, type DType, type OpRecord,
} from '../src/index.js';
import { seededRandom } from '../src/testing.js';

const hex = (words: ArrayLike<number>): string[] => Array.from(words, (w) => w.toString(16).padStart(8, '0'));
const parseHex = (s: string): number[] => s.trim().split(/\s+/).map((h) => parseInt(h, 16));

/** Random word j of counter block b under `key`, straight from the block function. */
function referenceWord(key: readonly [number, number], block: number, j: number): number {
  return philox4x32([block % 2 ** 32, Math.floor(block / 2 ** 32), 0, 0], key)[j]!;
}

/** Largest value <= u (u in [0, 1)) with `precision` significant bits and smallest exponent `minExp`. */
function roundTowardZero(u: number, precision: number, minExp: number): number {
  if (u === 0) return 0;
  const e = Math.max(Math.floor(Math.log2(u)), minExp);
  const ulp = 2 ** (e - precision + 1);
  return Math.floor(u / ulp) * ulp;
}

function expectedUniform(key: readonly [number, number], offset: number, n: number, dtype: DType): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u = (referenceWord(key, offset + Math.floor(i / 4), i % 4) >>> 8) / 2 ** 24;
    if (dtype === 'float16') out.push(roundTowardZero(u, 11, -14));
    else if (dtype === 'bfloat16') out.push(roundTowardZero(u, 8, -126));
    else out.push(u);
  }
  return out;
}

function expectedNormal(key: readonly [number, number], offset: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const block = offset + Math.floor(i / 2);
    const a = referenceWord(key, block, 2 * (i % 2));
    const b = referenceWord(key, block, 2 * (i % 2) + 1);
    const u1 = ((a >>> 8) + 1) / 2 ** 24;
    const u2 = (b >>> 8) / 2 ** 24;
    out.push(Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
  }
  return out;
}

function expectedInt(key: readonly [number, number], offset: number, n: number, low: number, high: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const w = BigInt(referenceWord(key, offset + Math.floor(i / 4), i % 4));
    out.push(low + Number((w * BigInt(high - low)) >> 32n));
  }
  return out;
}

afterEach(() => {
  manualSeed(0);
});

describe('philox4x32-10 block function', () => {
  it('multiplies 32x32 -> high 32 bits exactly', () => {
    const rnd = seededRandom(7);
    const cases: [number, number][] = [[0, 0], [1, 1], [0xffffffff, 0xffffffff], [0xffffffff, 2], [0x80000000, 0x80000000], [0xd2511f53, 0xcd9e8d57]];
    for (let i = 0; i < 2000; i++) cases.push([Math.floor(rnd() * 2 ** 32), Math.floor(rnd() * 2 ** 32)]);
    for (const [a, b] of cases) {
      expect(mulhi32(a, b)).toBe(Number((BigInt(a) * BigInt(b)) >> 32n));
      expect(mulhi32(a | 0, b | 0)).toBe(Number((BigInt(a) * BigInt(b)) >> 32n)); // int32 bit patterns too
    }
  });

  it('matches the Random123 known-answer vectors', () => {
    // counter (4 words), key (2 words) -> output, for 10 and 7 rounds.
    const kat: [number, string, string][] = [
      [10, '00000000 00000000 00000000 00000000 00000000 00000000', '6627e8d5 e169c58d bc57ac4c 9b00dbd8'],
      [10, 'ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff', '408f276d 41c83b0e a20bc7c6 6d5451fd'],
      [10, '243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0', 'd16cfe09 94fdcceb 5001e420 24126ea1'],
      [7, '00000000 00000000 00000000 00000000 00000000 00000000', '5f6fb709 0d893f64 4f121f81 4f730a48'],
      [7, 'ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff', '5207ddc2 45165e59 4d8ee751 8c52f662'],
      [7, '243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0', '4dfccaba 190a87f0 c47362ba b6b5242a'],
    ];
    for (const [rounds, input, output] of kat) {
      const words = parseHex(input);
      expect(hex(philox4x32(words.slice(0, 4), words.slice(4), rounds))).toEqual(output.split(' '));
    }
    // 10 rounds is the default.
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  });

  it('lays out blocks as counter [b mod 2^32, floor(b / 2^32), 0, 0], also across 2^32', () => {
    const key: [number, number] = [0x12345678, 0x9abcdef0];
    const offset = 2 ** 32 - 2;
    const words = philoxBlocks(key, offset, 4);
    for (let b = 0; b < 4; b++) {
      const block = offset + b;
      const expected = philox4x32([block % 2 ** 32, Math.floor(block / 2 ** 32), 0, 0], key);
      expect(Array.from(words.subarray(b * 4, b * 4 + 4))).toEqual(Array.from(expected));
    }
    expect(philoxBlocks(key, 5, 0).length).toBe(0);
  });

  it('rejects malformed counters, keys and ranges', () => {
    expect(() => philox4x32([0, 0, 0], [0, 0])).toThrow('philox4x32: counter must be 4 uint32 words, got [0, 0, 0]');
    expect(() => philox4x32([0, 0, 0, 0], [0, 2 ** 32])).toThrow('philox4x32: key must be 2 uint32 words');
    expect(() => philox4x32([0, 0, 0, 0], [0, 0], 0)).toThrow('rounds must be a positive integer');
    expect(() => philoxBlocks([0, 0], -1, 1)).toThrow('philoxBlocks: offset must be a non-negative safe integer, got -1');
    expect(() => philoxBlocks([0, 0], 2 ** 53 - 1, 2)).toThrow('exceeds 2^53 - 1');
  });
});

describe('seeds and generators', () => {
  it('splits 64-bit seeds into key words and validates them', () => {
    expect(seedKey(0)).toEqual([0, 0]);
    expect(seedKey(2 ** 32 + 5)).toEqual([5, 1]);
    expect(seedKey(0xffffffffffffffffn)).toEqual([0xffffffff, 0xffffffff]);
    expect(normalizeSeed(123)).toBe(123n);
    expect(() => normalizeSeed(-1)).toThrow('seed: a number seed must be a non-negative integer below 2^53, got -1');
    expect(() => normalizeSeed(1.5)).toThrow('non-negative integer');
    expect(() => normalizeSeed(2 ** 53)).toThrow('use a bigint');
    expect(() => normalizeSeed(1n << 64n)).toThrow('seed must be a number or a bigint in [0, 2^64)');
    expect(() => new Generator(-3)).toThrow('Generator: a number seed');
  });

  it('advances the offset by the blocks each op uses', () => {
    const g = new Generator(9);
    expect(g.offset).toBe(0);
    rand([5], { generator: g });
    expect(g.offset).toBe(2); // ceil(5 / 4)
    randn([5], { generator: g });
    expect(g.offset).toBe(5); // + ceil(5 / 2)
    randint(0, 10, [8], { generator: g });
    expect(g.offset).toBe(7);
    bernoulli(0.5, [1], { generator: g });
    expect(g.offset).toBe(8);
    rand([0], { generator: g });
    expect(g.offset).toBe(8);
    g.manualSeed(10);
    expect(g.offset).toBe(0);
    expect(g.seed).toBe(10n);
  });

  it('consecutive draws differ and a saved state reproduces them', () => {
    const g = new Generator(2024);
    const first = rand([7], { generator: g }).toArray();
    const saved = g.getState();
    expect(saved).toEqual({ seed: '2024', offset: 2 });
    const second = rand([7], { generator: g }).toArray();
    const third = randn([3], { generator: g }).toArray();
    expect(second).not.toEqual(first);
    const restored = new Generator(1);
    restored.setState(JSON.parse(JSON.stringify(saved)));
    expect(rand([7], { generator: restored }).toArray()).toEqual(second);
    expect(randn([3], { generator: restored }).toArray()).toEqual(third);
    const copy = g.clone();
    expect(rand([4], { generator: copy }).toArray()).toEqual(rand([4], { generator: g }).toArray());
    expect(() => g.setState({ seed: '-1', offset: 0 })).toThrow('Generator.setState: expected');
    expect(() => g.setState({ seed: '1', offset: -1 })).toThrow('Generator.setState: offset must be a non-negative safe integer');
  });

  it('the default generator, manualSeed and the seed option', () => {
    manualSeed(77);
    const a = rand([6]).toArray();
    expect(defaultGenerator.offset).toBe(2);
    manualSeed(77);
    expect(rand([6]).toArray()).toEqual(a);
    // `seed` draws from offset 0 of that seed and leaves the default generator alone.
    expect(rand([6], { seed: 77 }).toArray()).toEqual(a);
    expect(defaultGenerator.offset).toBe(2);
    expect(rand([6], { seed: 78 }).toArray()).not.toEqual(a);
    expect(() => rand([2], { seed: 1, generator: new Generator() })).toThrow('rand: pass either a generator or a seed, not both');
  });

  it('announces random ops with seed key words and offset', () => {
    const seen: OpRecord[] = [];
    const prev = setOpObserver((r) => seen.push(r));
    try {
      const g = new Generator(2n ** 40n + 3n);
      g.advance(11);
      randint(-2, 5, [3], { generator: g });
      randn([1], { seed: 5 });
    } finally {
      setOpObserver(prev);
    }
    expect(seen.map((r) => [r.op, r.inputs.length, r.attrs])).toEqual([
      ['randInt', 0, { low: -2, high: 5, seed: [3, 256], offset: 11 }],
      ['randNormal', 0, { seed: [5, 0], offset: 0 }],
    ]);
  });
});

describe('random ops follow the specified word mapping', () => {
  const shapes: number[][] = [[], [0], [1], [3, 5], [2, 0, 3], [4, 1, 3]];

  it('rand for every float dtype', () => {
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as DType[]) {
      for (const shape of shapes) {
        const g = new Generator(0xdeadbeefcafen);
        g.advance(3);
        const t = rand(shape, { generator: g, dtype });
        expect(t.dtype).toBe(dtype);
        expect(t.shape).toEqual(shape);
        expect(Array.from(t.toFloat64Array())).toEqual(expectedUniform(seedKey(0xdeadbeefcafen), 3, t.numel, dtype));
      }
    }
  });

  it('rand beyond one word chunk and with the top value rounded toward zero', () => {
    const n = 20001;
    const t = rand([n], { seed: 31 });
    expect(Array.from(t.toFloat64Array())).toEqual(expectedUniform(seedKey(31), 0, n, 'float32'));
    const bf = rand([n], { seed: 31, dtype: 'bfloat16' }).toFloat64Array();
    const h = rand([n], { seed: 31, dtype: 'float16' }).toFloat64Array();
    expect(Math.max(...bf)).toBeLessThan(1);
    expect(Math.max(...h)).toBeLessThan(1);
    expect(Array.from(h)).toEqual(expectedUniform(seedKey(31), 0, n, 'float16'));
  });

  it('randn for every float dtype, across chunks', () => {
    const key = seedKey(4);
    const n = 9001;
    const f64 = randn([n], { seed: 4, dtype: 'float64' }).toFloat64Array();
    const expected = expectedNormal(key, 0, n);
    expect(Array.from(f64)).toEqual(expected);
    expect(Array.from(randn([n], { seed: 4 }).toFloat64Array())).toEqual(expected.map(Math.fround));
    for (const dtype of ['float16', 'bfloat16'] as DType[]) {
      const t = randn([3, 7], { seed: 4, dtype }).toFloat64Array();
      const ref = expectedNormal(key, 0, 21);
      for (let i = 0; i < 21; i++) {
        // Half types round to nearest: within half an ulp (2^-11 / 2^-8 relative).
        expect(Math.abs(t[i]! - ref[i]!)).toBeLessThanOrEqual(Math.abs(ref[i]!) * (dtype === 'float16' ? 2 ** -11 : 2 ** -8) + 2 ** -25);
      }
    }
    for (const shape of shapes) expect(randn(shape, { seed: 1 }).shape).toEqual(shape);
  });

  it('randint for each integer dtype, including full ranges', () => {
    const cases: [number, number, DType][] = [[-3, 4, 'int32'], [0, 1, 'int32'], [-128, 128, 'int8'], [0, 256, 'uint8'], [-(2 ** 31), 2 ** 31, 'int32'], [5, 1000003, 'int32']];
    for (const [low, high, dtype] of cases) {
      const g = new Generator(99);
      g.advance(7);
      const t = randint(low, high, [5, 3], { generator: g, dtype });
      expect(t.dtype).toBe(dtype);
      const ref = high - low === 2 ** 32
        ? Array.from({ length: 15 }, (_, i) => low + referenceWord(seedKey(99), 7 + Math.floor(i / 4), i % 4))
        : expectedInt(seedKey(99), 7, 15, low, high);
      expect(Array.from(t.toFloat64Array())).toEqual(ref);
    }
    expect(randint(0, 3, []).shape).toEqual([]);
    expect(randint(0, 3, [0, 2]).numel).toBe(0);
  });

  it('bernoulli equals rand < p for the same seed and offset', () => {
    for (const p of [0, 0.1, 0.5, 0.999, 1]) {
      const u = rand([6, 7], { seed: 12 }).toFloat64Array();
      const b = bernoulli(p, [6, 7], { seed: 12 });
      expect(b.dtype).toBe('uint8');
      expect(Array.from(b.toFloat64Array())).toEqual(Array.from(u, (x) => (x < p ? 1 : 0)));
    }
    // p exactly on a uniform grid point: u < p must be strict.
    const u = rand([64], { seed: 3 }).toFloat64Array();
    const p = u[10]!;
    expect(bernoulli(p, [64], { seed: 3, dtype: 'float32' }).toFloat64Array()[10]).toBe(0);
    expect(Array.from(bernoulli(p, [64], { seed: 3 }).toFloat64Array())).toEqual(Array.from(u, (x) => (x < p ? 1 : 0)));
  });
});

describe('statistics', () => {
  it('uniforms have mean 1/2 and variance 1/12', () => {
    const n = 100_000;
    const u = rand([n], { seed: 1234 }).toFloat64Array();
    let sum = 0;
    let sq = 0;
    let outside = 0;
    for (const x of u) {
      if (!(x >= 0 && x < 1)) outside += 1;
      sum += x;
    }
    expect(outside).toBe(0);
    const mean = sum / n;
    for (const x of u) sq += (x - mean) ** 2;
    // Standard error of the mean is 0.0009; of the variance about 0.0003.
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(sq / (n - 1) - 1 / 12)).toBeLessThan(0.0015);
    // Equal-width histogram: each of 10 bins holds 10% within 5 standard errors.
    const bins = new Array<number>(10).fill(0);
    for (const x of u) bins[Math.floor(x * 10)]! += 1;
    for (const c of bins) expect(Math.abs(c - n / 10)).toBeLessThan(5 * Math.sqrt(n * 0.09));
  });

  it('normals have mean 0, variance 1 and the right tail mass', () => {
    const n = 100_000;
    const z = randn([n], { seed: 99, dtype: 'float64' }).toFloat64Array();
    let sum = 0;
    let sq = 0;
    let within1 = 0;
    let nonFinite = 0;
    for (const x of z) {
      if (!Number.isFinite(x)) nonFinite += 1;
      sum += x;
      if (Math.abs(x) < 1) within1 += 1;
    }
    expect(nonFinite).toBe(0);
    const mean = sum / n;
    for (const x of z) sq += (x - mean) ** 2;
    expect(Math.abs(mean)).toBeLessThan(0.016); // 5 standard errors
    expect(Math.abs(sq / (n - 1) - 1)).toBeLessThan(0.023);
    expect(Math.abs(within1 / n - 0.682689)).toBeLessThan(0.0075);
  });

  it('randint covers its range evenly and stays within bounds', () => {
    const n = 70_000;
    const v = randint(-3, 4, [n], { seed: 5 }).toFloat64Array();
    const counts = new Map<number, number>();
    for (const x of v) counts.set(x, (counts.get(x) ?? 0) + 1);
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([-3, -2, -1, 0, 1, 2, 3]);
    for (const c of counts.values()) expect(Math.abs(c - n / 7)).toBeLessThan(5 * Math.sqrt((n * 6) / 49));
    const bytes = randint(0, 256, [20000], { seed: 6, dtype: 'uint8' }).toFloat64Array();
    expect(new Set(bytes).size).toBe(256);
    const p = bernoulli(0.3, [n], { seed: 8 }).toFloat64Array().reduce((s, x) => s + x, 0) / n;
    expect(Math.abs(p - 0.3)).toBeLessThan(5 * Math.sqrt(0.21 / n));
  });
});

describe('errors', () => {
  it('names the op and the bad argument', () => {
    expect(() => rand([2], { dtype: 'int32' })).toThrow('rand: dtype must be a float type (float32, float64, float16, bfloat16), got int32');
    expect(() => randn([2], { dtype: 'uint8' })).toThrow('randn: dtype must be a float type');
    expect(() => rand([2, -1])).toThrow('rand: shape must be an array of non-negative integers');
    expect(() => rand([2], { dtype: 'float8' as DType })).toThrow("rand: unknown dtype 'float8'");
    expect(() => randint(3, 3, [2])).toThrow('randint: need integers low < high, got low=3, high=3');
    expect(() => randint(0, 1.5, [2])).toThrow('randint: need integers low < high');
    expect(() => randint(0, 300, [2], { dtype: 'uint8' })).toThrow('randint: [0, 300) does not fit in uint8 (values 0..255)');
    expect(() => randint(-1, 2, [2], { dtype: 'uint8' })).toThrow('does not fit in uint8');
    expect(() => randint(0, 2, [2], { dtype: 'float32' })).toThrow('randint: dtype must be int32, int8 or uint8, got float32');
    expect(() => bernoulli(1.5, [2])).toThrow('bernoulli: p must be a number in [0, 1], got 1.5');
    expect(() => bernoulli(Number.NaN, [2])).toThrow('bernoulli: p must be a number in [0, 1], got NaN');
    expect(() => rand([2], { seed: -5 })).toThrow('seed: a number seed must be a non-negative integer');
    expect(() => rand([2], { device: 'nowhere' })).toThrow("randUniform: no kernel registered for device 'nowhere'");
    const g = new Generator();
    expect(() => rand([2], { generator: g, device: 'nowhere' })).toThrow();
    expect(g.offset).toBe(0); // a failed op consumes nothing
  });
});

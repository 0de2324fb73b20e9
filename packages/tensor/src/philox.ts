/**
 * Counter-based random numbers: the Philox-4x32-10 block function (Salmon et al.,
 * "Parallel Random Numbers: As Easy as 1, 2, 3", SC 2011) and the `Generator` that
 * hands out counter ranges.
 *
 * Every random op is a pure function of (seed, offset, element index), so any device
 * can compute any element independently and produce the same numbers.
 *
 * ## Exact definition (what every backend implements)
 *
 * - Key: the 64-bit seed as two uint32 words, `k0 = seed mod 2^32`, `k1 = floor(seed / 2^32)`.
 * - Counter of block `b` (a non-negative integer < 2^53): `[b mod 2^32, floor(b / 2^32), 0, 0]`.
 * - One round maps counter `(c0, c1, c2, c3)` and key `(k0, k1)` to
 *   `(hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))`, where `hi`/`lo` are the
 *   upper/lower 32 bits of the exact 64-bit product (`__umulhi` and `*` in CUDA),
 *   `M0 = 0xD2511F53`, `M1 = 0xCD9E8D57`.
 * - Ten rounds; before each round except the first the key is bumped:
 *   `k0 += 0x9E3779B9`, `k1 += 0xBB67AE85` (mod 2^32).
 * - The four output words of block `b` are its random words `0..3`.
 *
 * How ops turn words into values is specified in `ops/random.ts`.
 *
 * @module
 */

/** Philox multiplier applied to counter word 0. */
export const PHILOX_M0 = 0xd2511f53;
/** Philox multiplier applied to counter word 2. */
export const PHILOX_M1 = 0xcd9e8d57;
/** Weyl increment of key word 0 between rounds (golden ratio). */
export const PHILOX_W0 = 0x9e3779b9;
/** Weyl increment of key word 1 between rounds (sqrt(3) - 1). */
export const PHILOX_W1 = 0xbb67ae85;
/** Rounds of the standard Philox-4x32-10. */
export const PHILOX_ROUNDS = 10;

/**
 * Upper 32 bits of the exact 64-bit product of two uint32 values (inputs may also be
 * given as int32 bit patterns). Doubles cannot hold a 64-bit product, so the operands
 * are split into 16-bit halves whose partial products (< 2^32) are exact.
 */
export function mulhi32(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const cross1 = aHi * bLo;
  const cross2 = aLo * bHi;
  // Carry out of bit 31 of the low half: (lolo >> 16) + low 16 bits of both cross terms.
  const carry = ((lolo >>> 16) + (cross1 & 0xffff) + (cross2 & 0xffff)) >>> 16;
  return (aHi * bHi + (cross1 >>> 16) + (cross2 >>> 16) + carry) >>> 0;
}

/**
 * Runs Philox-4x32 on one counter and writes the four output words to
 * `out[at..at+3]`. The allocation-free core used by the kernels.
 */
export function philox4x32Into(
  out: Uint32Array, at: number,
  c0: number, c1: number, c2: number, c3: number,
  k0: number, k1: number,
  rounds: number = PHILOX_ROUNDS,
): void {
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      k0 = (k0 + PHILOX_W0) | 0;
      k1 = (k1 + PHILOX_W1) | 0;
    }
    const hi0 = mulhi32(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0);
    const hi1 = mulhi32(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[at] = c0;
  out[at + 1] = c1;
  out[at + 2] = c2;
  out[at + 3] = c3;
}

function assertWords(words: ArrayLike<number>, count: number, what: string): void {
  if (words.length !== count || !Array.from(words).every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
    throw new RangeError(`philox4x32: ${what} must be ${count} uint32 words, got [${Array.from(words).join(', ')}]`);
  }
}

/** Philox-4x32 of one 128-bit `counter` (4 uint32 words) under a 64-bit `key` (2 uint32 words). */
export function philox4x32(counter: ArrayLike<number>, key: ArrayLike<number>, rounds: number = PHILOX_ROUNDS): Uint32Array {
  assertWords(counter, 4, 'counter');
  assertWords(key, 2, 'key');
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`philox4x32: rounds must be a positive integer, got ${rounds}`);
  const out = new Uint32Array(4);
  philox4x32Into(out, 0, counter[0]!, counter[1]!, counter[2]!, counter[3]!, key[0]!, key[1]!, rounds);
  return out;
}

/**
 * The random words of counter blocks `offset .. offset + blocks - 1` under `key`:
 * word `j` of block `offset + b` is element `4 * b + j` of the result.
 */
export function philoxBlocks(key: readonly [number, number], offset: number, blocks: number): Uint32Array {
  assertBlockRange(offset, blocks, 'philoxBlocks');
  const out = new Uint32Array(blocks * 4);
  const k0 = key[0];
  const k1 = key[1];
  for (let b = 0; b < blocks; b++) {
    const block = offset + b;
    philox4x32Into(out, b * 4, block >>> 0, Math.floor(block / 4294967296), 0, 0, k0, k1);
  }
  return out;
}

function assertBlockRange(offset: number, blocks: number, where: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`${where}: offset must be a non-negative safe integer, got ${offset}`);
  if (!Number.isSafeInteger(blocks) || blocks < 0) throw new RangeError(`${where}: block count must be a non-negative safe integer, got ${blocks}`);
  if (offset + blocks > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`${where}: counter range ${offset} + ${blocks} blocks exceeds 2^53 - 1`);
  }
}

/** A seed: a non-negative integer below 2^64 (numbers must be safe integers, below 2^53). */
export type Seed = number | bigint;

const TWO_64 = 1n << 64n;

/** Validates a seed and returns it as a bigint in [0, 2^64). */
export function normalizeSeed(seed: Seed, where = 'seed'): bigint {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`${where}: a number seed must be a non-negative integer below 2^53, got ${seed} (use a bigint for larger seeds)`);
    }
    return BigInt(seed);
  }
  if (typeof seed !== 'bigint' || seed < 0n || seed >= TWO_64) {
    throw new RangeError(`${where}: seed must be a number or a bigint in [0, 2^64), got ${String(seed)}`);
  }
  return seed;
}

/** The Philox key of a seed: `[seed mod 2^32, floor(seed / 2^32)]`. This is the `seed` attr of random ops. */
export function seedKey(seed: Seed): [number, number] {
  const s = normalizeSeed(seed);
  return [Number(s & 0xffffffffn), Number(s >> 32n)];
}

/** Serializable state of a `Generator` (the seed as a decimal string so it survives JSON). */
export interface GeneratorState {
  /** The 64-bit seed, in decimal. */
  seed: string;
  /** Counter blocks consumed so far. */
  offset: number;
}

/** Seed of a new `Generator` when none is given, so runs are reproducible by default. */
export const DEFAULT_SEED = 0;

/**
 * A stream of counter blocks: a 64-bit seed (the Philox key) and an offset that counts
 * the 128-bit blocks already used. Each random op takes the next blocks it needs, so
 * consecutive ops differ, and restoring a saved (seed, offset) reproduces what follows.
 */
export class Generator {
  private seedValue: bigint;
  private keyWords: [number, number];
  private blocksUsed = 0;

  /** A generator at offset 0 for `seed` (default `DEFAULT_SEED`). */
  constructor(seed: Seed = DEFAULT_SEED) {
    this.seedValue = normalizeSeed(seed, 'Generator');
    this.keyWords = seedKey(this.seedValue);
  }

  /** The 64-bit seed. */
  get seed(): bigint {
    return this.seedValue;
  }

  /** The Philox key: the seed as `[low 32 bits, high 32 bits]`. */
  get key(): readonly [number, number] {
    return this.keyWords;
  }

  /** Counter blocks consumed so far: the first block the next op uses. */
  get offset(): number {
    return this.blocksUsed;
  }

  /** Restarts the stream: sets the seed and resets the offset to 0. Returns `this`. */
  manualSeed(seed: Seed): this {
    this.seedValue = normalizeSeed(seed, 'manualSeed');
    this.keyWords = seedKey(this.seedValue);
    this.blocksUsed = 0;
    return this;
  }

  /** Marks `blocks` more counter blocks as used. */
  advance(blocks: number): void {
    assertBlockRange(this.blocksUsed, blocks, 'Generator.advance');
    this.blocksUsed += blocks;
  }

  /** A snapshot that `setState` (on this or another generator) restores. */
  getState(): GeneratorState {
    return { seed: this.seedValue.toString(), offset: this.blocksUsed };
  }

  /** Restores a snapshot from `getState`. */
  setState(state: GeneratorState): void {
    if (typeof state !== 'object' || state === null || typeof state.seed !== 'string' || !/^[0-9]+$/.test(state.seed)) {
      throw new TypeError(`Generator.setState: expected { seed: decimal string, offset: number }, got ${JSON.stringify(state)}`);
    }
    const seed = normalizeSeed(BigInt(state.seed), 'Generator.setState');
    assertBlockRange(state.offset, 0, 'Generator.setState');
    this.seedValue = seed;
    this.keyWords = seedKey(seed);
    this.blocksUsed = state.offset;
  }

  /** An independent generator with the same seed and offset. */
  clone(): Generator {
    const g = new Generator(this.seedValue);
    g.blocksUsed = this.blocksUsed;
    return g;
  }
}

/** The generator random ops use when given neither `generator` nor `seed`. */
export const defaultGenerator = new Generator();

/** Reseeds the default generator (offset back to 0) and returns it. */
export function manualSeed(seed: Seed): Generator {
  return defaultGenerator.manualSeed(seed);
}

/** The Philox key and first counter block that a random op's attrs name. */
export interface PhiloxAttrs {
  /** Low word of the key. */
  k0: number;
  /** High word of the key. */
  k1: number;
  /** First 128-bit counter block. */
  offset: number;
}

/**
 * Reads and checks the `{seed: [low, high], offset}` attrs of the random ops
 * ('randUniform', 'randNormal', 'randInt', 'randBernoulli'); every device's kernel uses it.
 */
export function readPhiloxAttrs(op: string, attrs: Readonly<Record<string, unknown>>): PhiloxAttrs {
  const seed = attrs['seed'];
  const offset = attrs['offset'];
  const isWord = (w: unknown): w is number => typeof w === 'number' && Number.isInteger(w) && w >= 0 && w <= 0xffffffff;
  if (!Array.isArray(seed) || seed.length !== 2 || !isWord(seed[0]) || !isWord(seed[1])) {
    throw new TypeError(`${op}: attr seed must be the key [low, high] as two uint32 words, got ${JSON.stringify(seed)}`);
  }
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new TypeError(`${op}: attr offset must be a non-negative safe integer, got ${String(offset)}`);
  }
  return { k0: seed[0], k1: seed[1], offset };
}

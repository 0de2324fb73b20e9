/**
 * Random tensors from the Philox counter-based generator (see `philox.ts`).
 *
 * Each op is a pure function of its attrs `{ seed: [k0, k1], offset, ... }`, where
 * `seed` is the Philox key (the 64-bit seed as low and high uint32 words) and `offset`
 * the first counter block. "Word j of block b" below is output word j of Philox-4x32-10
 * on counter `[b mod 2^32, floor(b / 2^32), 0, 0]`. Element `i` is the i-th element in
 * row-major order. Every backend follows these rules exactly:
 *
 * - `randUniform`: element i uses word `i % 4` of block `offset + floor(i / 4)`;
 *   `u = (w >>> 8) * 2^-24`, exactly representable in float32, in [0, 1). float32 and
 *   float64 outputs hold `u` exactly; float16 and bfloat16 round it toward zero (so the
 *   value stays below 1). Uses `ceil(n / 4)` blocks.
 * - `randNormal`: element i uses words `2 * (i % 2)` (a) and `2 * (i % 2) + 1` (b) of block
 *   `offset + floor(i / 2)`; `u1 = ((a >>> 8) + 1) * 2^-24` in (0, 1], `u2 = (b >>> 8) * 2^-24`,
 *   `z = sqrt(-2 ln u1) * cos(2 pi u2)` evaluated in float64, then rounded to nearest even
 *   in the output dtype. Uses `ceil(n / 2)` blocks. (Backends evaluating the
 *   transcendental functions with other float64 libraries agree to about 1 ulp of float64,
 *   hence exactly after rounding to float32 except in rare ties.)
 * - `randInt` (attrs also `low`, `high`): element i uses word `w` = word `i % 4` of block
 *   `offset + floor(i / 4)`; value `low + hi32(w * (high - low))`, the upper 32 bits of the
 *   exact 64-bit product (`low + w` when the range is 2^32). No rejection sampling, so
 *   every element uses one fixed word; each of the `r = high - low` values has probability
 *   `floor(2^32 / r) / 2^32` or `ceil(2^32 / r) / 2^32`, a relative bias below `r / 2^32`.
 *   Uses `ceil(n / 4)` blocks.
 * - `randBernoulli` (attrs also `p`): element i is 1 when `(w >>> 8) < ceil(p * 2^24)`,
 *   with `w` chosen as in `randUniform` — the same as `randUniform(...) < p` for the same
 *   (seed, offset). Uses `ceil(n / 4)` blocks.
 *
 * @module
 */
import { assertDType, integerRange, isFloatDType, type DType } from '../dtype.js';
import { execute1, type Attrs } from '../dispatch.js';
import { defaultGenerator, Generator, seedKey, type Seed } from '../philox.js';
import { assertShape, numel, type Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';

/** Where random numbers come from and what tensor receives them. */
export interface RandomOptions {
  /** The stream to draw from (default: `defaultGenerator`); its offset advances by the blocks used. */
  generator?: Generator;
  /** Draw from offset 0 of this seed instead of a generator (no state changes). Excludes `generator`. */
  seed?: Seed;
  /** Element type (default float32 for rand/randn, int32 for randint, uint8 for bernoulli). */
  dtype?: DType;
  /** Device name (default 'cpu'). */
  device?: string;
}

/**
 * Runs a random op: picks (seed, offset) from `options`, executes, then advances the
 * generator by `blocks` (only when the op succeeded).
 */
function runRandom(
  op: string, where: string, shape: Shape, dtype: DType, blocks: number,
  options: RandomOptions, extra: Attrs = {},
): Tensor {
  const device = options.device ?? 'cpu';
  if (options.seed !== undefined) {
    if (options.generator !== undefined) throw new TypeError(`${where}: pass either a generator or a seed, not both`);
    const attrs = { ...extra, seed: seedKey(options.seed), offset: 0 };
    return execute1(op, [], shape, dtype, attrs, device);
  }
  const generator = options.generator ?? defaultGenerator;
  if (!(generator instanceof Generator)) throw new TypeError(`${where}: options.generator must be a Generator`);
  const offset = generator.offset;
  if (offset + blocks > Number.MAX_SAFE_INTEGER) throw new RangeError(`${where}: generator offset ${offset} would pass 2^53 - 1`);
  const out = execute1(op, [], shape, dtype, { ...extra, seed: [...generator.key], offset }, device);
  generator.advance(blocks);
  return out;
}

function floatDType(options: RandomOptions, where: string): DType {
  const dtype = options.dtype ?? 'float32';
  assertDType(dtype, where);
  if (!isFloatDType(dtype)) throw new TypeError(`${where}: dtype must be a float type (float32, float64, float16, bfloat16), got ${dtype}`);
  return dtype;
}

/** Uniform values in [0, 1) with 24 random bits each. Op name: `randUniform` {seed, offset}. */
export function rand(shape: Shape, options: RandomOptions = {}): Tensor {
  assertShape(shape, 'rand');
  const dtype = floatDType(options, 'rand');
  return runRandom('randUniform', 'rand', shape, dtype, Math.ceil(numel(shape) / 4), options);
}

/** Standard normal values (Box-Muller). Op name: `randNormal` {seed, offset}. */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  assertShape(shape, 'randn');
  const dtype = floatDType(options, 'randn');
  return runRandom('randNormal', 'randn', shape, dtype, Math.ceil(numel(shape) / 2), options);
}

/**
 * Integers uniform in [low, high) (`high - low` at most 2^32), in an integer dtype
 * (default int32) that holds both `low` and `high - 1`.
 * Op name: `randInt` {seed, offset, low, high}.
 */
export function randint(low: number, high: number, shape: Shape, options: RandomOptions = {}): Tensor {
  assertShape(shape, 'randint');
  const dtype = options.dtype ?? 'int32';
  assertDType(dtype, 'randint');
  const range = integerRange(dtype);
  if (!range) throw new TypeError(`randint: dtype must be int32, int8 or uint8, got ${dtype}`);
  if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low) {
    throw new RangeError(`randint: need integers low < high, got low=${low}, high=${high}`);
  }
  if (low < range[0] || high - 1 > range[1]) {
    throw new RangeError(`randint: [${low}, ${high}) does not fit in ${dtype} (values ${range[0]}..${range[1]})`);
  }
  return runRandom('randInt', 'randint', shape, dtype, Math.ceil(numel(shape) / 4), options, { low, high });
}

/**
 * 1 with probability `p`, else 0 (default dtype uint8; any dtype holds 0 and 1).
 * Equals `rand(shape) < p` drawn from the same (seed, offset).
 * Op name: `randBernoulli` {seed, offset, p}.
 */
export function bernoulli(p: number, shape: Shape, options: RandomOptions = {}): Tensor {
  assertShape(shape, 'bernoulli');
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`bernoulli: p must be a number in [0, 1], got ${p}`);
  const dtype = options.dtype ?? 'uint8';
  assertDType(dtype, 'bernoulli');
  return runRandom('randBernoulli', 'bernoulli', shape, dtype, Math.ceil(numel(shape) / 4), options, { p });
}


// CPU kernels of the random ops. The mapping from Philox words to values is specified
// in ops/random.ts; these loops follow it literally. Words are generated in chunks so
// that large outputs need no word buffer of their own size.
import { registerKernel } from '../dispatch.js';
import { mulhi32, philox4x32Into, readPhiloxAttrs, type PhiloxAttrs } from '../philox.js';
import type { Tensor } from '../tensor.js';
import { commitValues, outputValues, storageOf } from './access.js';

/** Words generated per chunk (a multiple of 4, so chunks start on block boundaries). */
const CHUNK_WORDS = 16384;
const TWO_POW_M24 = 2 ** -24;


/** Fills `words` with the words of `blocks` counter blocks starting at block `first`. */
function fillWords(words: Uint32Array, { k0, k1 }: PhiloxAttrs, first: number, blocks: number): void {
  for (let b = 0; b < blocks; b++) {
    const block = first + b;
    philox4x32Into(words, b * 4, block >>> 0, Math.floor(block / 4294967296), 0, 0, k0, k1);
  }
}

/**
 * Calls `write(words, start, count)` for consecutive element ranges, where element
 * `start + j` owns `wordsPerElement` words starting at `words[j * wordsPerElement]`.
 */
function forEachChunk(
  out: Tensor, attrs: PhiloxAttrs, wordsPerElement: 1 | 2,
  write: (words: Uint32Array, start: number, count: number) => void,
): void {
  const n = out.numel;
  const perChunk = CHUNK_WORDS / wordsPerElement;
  const words = new Uint32Array(Math.min(CHUNK_WORDS, Math.ceil((n * wordsPerElement) / 4) * 4));
  for (let start = 0; start < n; start += perChunk) {
    const count = Math.min(perChunk, n - start);
    const firstBlock = attrs.offset + (start * wordsPerElement) / 4;
    fillWords(words, attrs, firstBlock, Math.ceil((count * wordsPerElement) / 4));
    write(words, start, count);
  }
}

/** float16 bits of `k * 2^-24` (k < 2^24) rounded toward zero. */
function uniformFloat16Bits(k: number): number {
  if (k < 1024) return k; // subnormal: k * 2^-24 is exactly the pattern k
  const lead = 31 - Math.clz32(k); // 10..23: the value is 2^(lead - 24) * (1 + fraction)
  return ((lead - 9) << 10) | ((k >>> (lead - 10)) & 0x3ff);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** bfloat16 bits of `k * 2^-24` rounded toward zero (drop the low 16 float32 bits). */
function uniformBfloat16Bits(k: number): number {
  scratchF32[0] = k * TWO_POW_M24;
  return scratchU32[0]! >>> 16;
}

registerKernel('randUniform', 'cpu', (_, [out], attrs) => {
  const a = readPhiloxAttrs('randUniform', attrs);
  const raw = storageOf(out!);
  const base = out!.offset;
  const dtype = out!.dtype;
  forEachChunk(out!, a, 1, (words, start, count) => {
    const at = base + start;
    if (dtype === 'float16') for (let j = 0; j < count; j++) raw[at + j] = uniformFloat16Bits(words[j]! >>> 8);
    else if (dtype === 'bfloat16') for (let j = 0; j < count; j++) raw[at + j] = uniformBfloat16Bits(words[j]! >>> 8);
    else for (let j = 0; j < count; j++) raw[at + j] = (words[j]! >>> 8) * TWO_POW_M24;
  });
});

registerKernel('randNormal', 'cpu', (_, [out], attrs) => {
  const a = readPhiloxAttrs('randNormal', attrs);
  const dst = outputValues(out!);
  forEachChunk(out!, a, 2, (words, start, count) => {
    for (let j = 0; j < count; j++) {
      const u1 = ((words[2 * j]! >>> 8) + 1) * TWO_POW_M24; // (0, 1]: log stays finite
      const u2 = (words[2 * j + 1]! >>> 8) * TWO_POW_M24;
      dst[start + j] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
  });
  commitValues(out!, dst);
});

registerKernel('randInt', 'cpu', (_, [out], attrs) => {
  const a = readPhiloxAttrs('randInt', attrs);
  const low = attrs['low'] as number;
  const range = (attrs['high'] as number) - low;
  if (!Number.isSafeInteger(low) || !Number.isSafeInteger(range) || range < 1 || range > 4294967296) {
    throw new RangeError(`randInt: attrs low=${String(attrs['low'])}, high=${String(attrs['high'])} must be integers with 1 <= high - low <= 2^32`);
  }
  const dst = outputValues(out!);
  forEachChunk(out!, a, 1, (words, start, count) => {
    if (range === 4294967296) for (let j = 0; j < count; j++) dst[start + j] = low + words[j]!;
    else for (let j = 0; j < count; j++) dst[start + j] = low + mulhi32(words[j]!, range);
  });
  commitValues(out!, dst);
});

registerKernel('randBernoulli', 'cpu', (_, [out], attrs) => {
  const a = readPhiloxAttrs('randBernoulli', attrs);
  const p = attrs['p'];
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`randBernoulli: attr p must be in [0, 1], got ${String(p)}`);
  const threshold = Math.ceil(p * 16777216); // u < p  <=>  (w >>> 8) < ceil(p * 2^24)
  const dst = outputValues(out!);
  forEachChunk(out!, a, 1, (words, start, count) => {
    for (let j = 0; j < count; j++) dst[start + j] = (words[j]! >>> 8) < threshold ? 1 : 0;
  });
  commitValues(out!, dst);
});

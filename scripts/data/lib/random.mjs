/**
 * Seeded randomness for the data builders, so every output file is reproducible.
 *
 * @module
 */

/**
 * A seeded generator (mulberry32) returning numbers in [0, 1).
 * @param {number} seed
 * @returns {() => number}
 */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An integer in [0, n).
 * @param {() => number} random
 * @param {number} n
 */
export function randomInt(random, n) {
  return Math.floor(random() * n);
}

/**
 * Shuffles `items` in place (Fisher-Yates) and returns it.
 * @template T
 * @param {T[]} items
 * @param {() => number} random
 * @returns {T[]}
 */
export function shuffle(items, random) {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(random, i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/**
 * One element of a non-empty array.
 * @template T
 * @param {readonly T[]} items
 * @param {() => number} random
 * @returns {T}
 */
export function pick(items, random) {
  return items[randomInt(random, items.length)];
}

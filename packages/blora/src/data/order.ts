// A deterministic, epoch-free order over a data set: position p of the endless stream is
// example perm_e[p mod N] with e = floor(p / N) and perm_e a shuffle drawn from (seed, e).
// Any position can be computed directly, so training resumes at the exact sample from the
// step number alone.
import { philoxBlocks } from '@blora/tensor';

const TWO_32 = 4294967296;

/**
 * A uniformly shuffled permutation of 0 .. n-1 (Fisher-Yates), drawn from the Philox
 * stream keyed by (seed, epoch): the same arguments give the same permutation everywhere.
 */
export function shuffledIndices(n: number, seed: number, epoch: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  if (n < 2) return out;
  // Two 32-bit words per draw give a 53-bit uniform value in [0, 1).
  const words = philoxBlocks([seed >>> 0, epoch >>> 0], 0, Math.ceil((n - 1) / 2));
  for (let i = n - 1, w = 0; i > 0; i--, w += 2) {
    const u = ((words[w]! >>> 5) * 67108864 + (words[w + 1]! >>> 6)) / 9007199254740992;
    const j = Math.floor(u * (i + 1));
    const tmp = out[i]!;
    out[i] = out[j]!;
    out[j] = tmp;
  }
  return out;
}

/** Options of `DataOrder`. */
export interface DataOrderOptions {
  /** Seed of the shuffles (an integer in [0, 2^32); default 0). */
  seed?: number;
  /** Shuffle every pass (default true); false walks the data set in file order. */
  shuffle?: boolean;
}

/** The endless, seeded order in which examples are visited. */
export class DataOrder {
  /** Seed of the shuffles. */
  readonly seed: number;
  /** Whether each pass is shuffled. */
  readonly shuffle: boolean;
  private cachedEpoch = -1;
  private cachedPerm: Uint32Array | null = null;

  constructor(
    /** Number of examples. */
    readonly size: number,
    options: DataOrderOptions = {},
  ) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`DataOrder: the data set must hold at least one example, got ${size}`);
    this.seed = options.seed ?? 0;
    if (!Number.isInteger(this.seed) || this.seed < 0 || this.seed >= TWO_32) {
      throw new RangeError(`DataOrder: seed must be an integer in [0, 2^32), got ${this.seed}`);
    }
    this.shuffle = options.shuffle ?? true;
  }

  /** The example index at stream position `position` (0-based, unbounded). */
  indexAt(position: number): number {
    if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`DataOrder: position must be a non-negative integer, got ${position}`);
    const epoch = Math.floor(position / this.size);
    const within = position - epoch * this.size;
    if (!this.shuffle) return within;
    if (epoch !== this.cachedEpoch) {
      this.cachedPerm = shuffledIndices(this.size, this.seed, epoch);
      this.cachedEpoch = epoch;
    }
    return this.cachedPerm![within]!;
  }

  /** The example indices at positions `start .. start + count - 1`. */
  range(start: number, count: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push(this.indexAt(start + i));
    return out;
  }

  /** Which pass over the data the position falls in (0-based). */
  epochOf(position: number): number {
    return Math.floor(position / this.size);
  }
}

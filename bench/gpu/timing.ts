// Host-clock timing of device work: the device runs asynchronously, so every timed region
// starts and ends with a synchronize().
import { performance } from 'node:perf_hooks';

/** One timed figure: per-call times in milliseconds and how they were taken. */
export interface Timing {
  /** Median over the repeats of (batch time / calls in the batch). */
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Timed batches. */
  readonly repeats: number;
  /** Calls per batch, chosen so one batch lasts at least `minBatchMs`. */
  readonly inner: number;
  /** Untimed calls before timing. */
  readonly warmup: number;
}

/** How `timeDeviceCalls` repeats a call. */
export interface TimingOptions {
  readonly repeats: number;
  readonly warmup: number;
  /** Shortest batch worth timing, in ms (default 1): short calls are batched up to it. */
  readonly minBatchMs?: number;
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Times `call(i)` (i counts calls, so inputs can rotate): `warmup` untimed calls, a probe of
 * three calls to size the batches, then `repeats` batches, each bracketed by `synchronize()`
 * and read with the host's monotonic clock. Host time includes our own dispatch cost in
 * JavaScript, which is part of what a caller pays.
 */
export function timeDeviceCalls(call: (i: number) => void, synchronize: () => void, options: TimingOptions): Timing {
  const minBatchMs = options.minBatchMs ?? 1;
  let calls = 0;
  for (let w = 0; w < options.warmup; w++) call(calls++);
  synchronize();
  const probe = 3;
  let t0 = performance.now();
  for (let p = 0; p < probe; p++) call(calls++);
  synchronize();
  const perCall = Math.max((performance.now() - t0) / probe, 1e-4);
  const inner = Math.max(1, Math.min(10_000, Math.ceil(minBatchMs / perCall)));
  const samples: number[] = [];
  for (let r = 0; r < options.repeats; r++) {
    t0 = performance.now();
    for (let j = 0; j < inner; j++) call(calls++);
    synchronize();
    samples.push((performance.now() - t0) / inner);
  }
  return {
    medianMs: median(samples),
    minMs: Math.min(...samples),
    maxMs: Math.max(...samples),
    repeats: options.repeats,
    inner,
    warmup: options.warmup,
  };
}

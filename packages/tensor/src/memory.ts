// Deterministic memory management: dispose(), tidy() scopes, per-device statistics,
// and a FinalizationRegistry that frees what was forgotten.
import type { Tensor } from './tensor.js';

/** Live tensors and bytes on one device. */
export interface MemoryStats {
  /** Tensor objects created and not yet disposed (views included). */
  liveTensors: number;
  /** Distinct allocations still held. */
  liveStorages: number;
  /** Bytes held by those allocations. */
  bytes: number;
}

const stats = new Map<string, MemoryStats>();
/** Highest `bytes` seen on each device since the start or the last `resetPeakMemory`. */
const peaks = new Map<string, number>();

function statsOf(device: string): MemoryStats {
  let s = stats.get(device);
  if (!s) stats.set(device, (s = { liveTensors: 0, liveStorages: 0, bytes: 0 }));
  return s;
}

/** @internal Called by Storage on allocation (bytes > 0) and release (bytes < 0). */
export function trackStorage(device: string, bytes: number): void {
  const s = statsOf(device);
  s.liveStorages += Math.sign(bytes);
  s.bytes += bytes;
  if (bytes > 0 && s.bytes > (peaks.get(device) ?? 0)) peaks.set(device, s.bytes);
}

/** @internal Called by Tensor on creation (+1) and disposal (-1). */
export function trackTensor(device: string, delta: number): void {
  statsOf(device).liveTensors += delta;
}

/** Memory held on `device` (default `'cpu'`), as counted by this library. */
export function memoryStats(device = 'cpu'): MemoryStats {
  return { ...statsOf(device) };
}

/**
 * The most bytes held at once on `device` (default `'cpu'`) by this library's allocations
 * since the process started or since the last `resetPeakMemory(device)`. Counted at each
 * allocation, so a temporary that lives for one op is included.
 */
export function peakBytes(device = 'cpu'): number {
  return Math.max(peaks.get(device) ?? 0, statsOf(device).bytes);
}

/**
 * Starts a new peak measurement on `device` (default `'cpu'`): the peak becomes the bytes
 * held now. Returns the peak that was reached before the reset. Measure a phase with
 * `resetPeakMemory(d); run(); peakBytes(d)`.
 */
export function resetPeakMemory(device = 'cpu'): number {
  const before = peakBytes(device);
  peaks.set(device, statsOf(device).bytes);
  return before;
}

type Scope = Set<Tensor>;
const scopes: Scope[] = [];

/** @internal Every new tensor joins the innermost open scope. */
export function trackInScope(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Keeps `t` alive past the end of the current `tidy` scope. Returns `t`. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if ((value as { isTensor?: boolean }).isTensor === true) {
    into.add(value as Tensor);
  } else if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, into, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, into, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, into, depth + 1);
  }
}

/**
 * Runs `fn` and disposes every tensor it created, except the ones it returns
 * (directly, or inside arrays / plain objects / Maps) and those passed to `keep`.
 * Returned tensors move to the enclosing scope. Async functions are not supported:
 * a scope must not span an `await`.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = new Set();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error('tidy: the function must be synchronous (it returned a Promise)');
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  for (const t of scope) {
    if (survivors.has(t)) trackInScope(t);
    else t.dispose();
  }
  return result;
}

/** Disposes every tensor found in `value` (a tensor, or arrays / objects of tensors). */
export function dispose(value: unknown): void {
  const found = new Set<Tensor>();
  collectTensors(value, found);
  for (const t of found) t.dispose();
}

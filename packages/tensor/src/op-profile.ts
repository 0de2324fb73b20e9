// Where the time of a piece of work goes, op by op. While a profile is open on a device, every
// op dispatched there is followed by a synchronize, so the wall time from its dispatch to the
// end of that synchronize is its own (host dispatch, allocation and device work). The
// synchronize costs a few microseconds per op on a GPU: a profile shows shares, not the speed
// of the unprofiled run.
import { getBackend } from './backend.js';

/** Wall time spent in one op name while a profile was open. */
export interface OpProfileEntry {
  /** The dispatched op's name (as registered in the kernel registry). */
  readonly op: string;
  /** Times it ran. */
  readonly calls: number;
  /** Total milliseconds, dispatch to the end of the synchronize after it. */
  readonly ms: number;
}

/** The result of `stopOpProfile`: entries sorted by time, largest first. */
export interface OpProfile {
  /** The profiled device. */
  readonly device: string;
  /** Milliseconds from `startOpProfile` to `stopOpProfile`. */
  readonly wallMs: number;
  /** Sum of the entries' milliseconds; the rest of `wallMs` ran outside dispatched ops (views, host code). */
  readonly opMs: number;
  /** One entry per op name. */
  readonly entries: readonly OpProfileEntry[];
}

interface OpenProfile {
  readonly device: string;
  readonly started: number;
  readonly table: Map<string, { calls: number; ms: number }>;
}

let open: OpenProfile | null = null;

/**
 * Starts timing every op dispatched on `device` (after draining work already queued there).
 * Only one profile is open at a time; starting another throws.
 */
export function startOpProfile(device = 'cpu'): void {
  if (open) throw new Error(`startOpProfile: a profile of '${open.device}' is already open; stop it first`);
  getBackend(device).synchronize();
  open = { device, started: performance.now(), table: new Map() };
}

/** Stops the open profile and returns it; throws when none is open. */
export function stopOpProfile(): OpProfile {
  if (!open) throw new Error('stopOpProfile: no profile is open');
  const { device, started, table } = open;
  open = null;
  getBackend(device).synchronize();
  const entries = [...table].map(([op, e]) => ({ op, calls: e.calls, ms: e.ms })).sort((a, b) => b.ms - a.ms);
  return { device, wallMs: performance.now() - started, opMs: entries.reduce((s, e) => s + e.ms, 0), entries };
}

/** Runs `fn` inside a profile of `device` and returns its result with the profile (closed even when `fn` throws). */
export function profileOps<T>(device: string, fn: () => T): { result: T; profile: OpProfile } {
  startOpProfile(device);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stopOpProfile();
    throw e;
  }
  return { result, profile: stopOpProfile() };
}

/** @internal The dispatcher's hook: runs `dispatch` and, when `device` is being profiled, times it to the end of its work. */
export function timedDispatch<T>(op: string, device: string, dispatch: () => T): T {
  const profile = open;
  if (!profile || profile.device !== device) return dispatch();
  const start = performance.now();
  try {
    return dispatch();
  } finally {
    getBackend(device).synchronize();
    const entry = profile.table.get(op) ?? { calls: 0, ms: 0 };
    entry.calls += 1;
    entry.ms += performance.now() - start;
    profile.table.set(op, entry);
  }
}

/** The entries of `profile` as a fixed-width text table: op, calls, ms, share of the op time. */
export function formatOpProfile(profile: OpProfile, limit = 30): string {
  const rows = profile.entries.slice(0, limit);
  const width = Math.max(2, ...rows.map((e) => e.op.length));
  const lines = [`${'op'.padEnd(width)}  ${'calls'.padStart(7)}  ${'ms'.padStart(10)}  ${'share'.padStart(6)}`];
  for (const e of rows) {
    const share = profile.opMs > 0 ? (100 * e.ms) / profile.opMs : 0;
    lines.push(`${e.op.padEnd(width)}  ${String(e.calls).padStart(7)}  ${e.ms.toFixed(3).padStart(10)}  ${share.toFixed(1).padStart(5)}%`);
  }
  if (profile.entries.length > rows.length) lines.push(`(${profile.entries.length - rows.length} more op names)`);
  lines.push(`ops ${profile.opMs.toFixed(3)} ms of ${profile.wallMs.toFixed(3)} ms wall on ${profile.device}`);
  return lines.join('\n');
}

// The JSON report of our side of the GPU benchmark; peers.py writes the same result shape.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Timing } from './timing.js';

/** One figure. `value` is in `unit`; timing fields are per call. */
export interface BenchResult extends Partial<Timing> {
  /** Stable id shared with the peer suite, e.g. 'gemm.bf16.xWt.4096x4096x4096'. */
  readonly id: string;
  readonly group: string;
  readonly label: string;
  readonly unit: string;
  readonly value: number;
  /** Bytes one call moves through device memory (bandwidth figures). */
  readonly bytes?: number;
  /** Floating-point operations of one call (GEMM figures). */
  readonly flops?: number;
  /** Input copies the calls rotate over. */
  readonly copies?: number;
  /** How the figure was taken. */
  readonly method: string;
  /** Spot check of the result: the largest relative error seen, and the bound it had to meet. */
  readonly check?: { readonly maxRelError: number; readonly bound: number };
  /** For bandwidth figures: this figure as a percentage of our own copy bandwidth. */
  percentOfCopy?: number;
}

/** A whole run of our side. */
export interface BenchReport {
  readonly suite: 'ours';
  readonly date: string;
  skipped: boolean;
  reason?: string;
  gpu?: unknown;
  memory?: unknown;
  readonly versions: Record<string, string>;
  config?: unknown;
  readonly method: string;
  readonly results: BenchResult[];
  readonly errors: { group: string; id?: string; error: string }[];
}

/** An empty report of a run starting now. */
export function newReport(): BenchReport {
  return {
    suite: 'ours',
    date: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    skipped: false,
    versions: { node: process.version },
    method:
      'host monotonic clock around batches of calls bracketed by synchronize() (batch >= ~1 ms), warm-up first, ' +
      'median of the per-call times of the repeats; inputs random; small inputs rotated over copies totalling ' +
      '>= 4 x L2; results spot-checked against float64 dot products / sums',
    results: [],
    errors: [],
  };
}

/** Fills in percentOfCopy for every GB/s figure, when our copy was measured. */
export function relateToCopy(report: BenchReport): void {
  const copy = report.results.find((r) => r.id === 'copy.d2d');
  if (!copy) return;
  for (const r of report.results) {
    if (r.unit === 'GB/s' && r !== copy) r.percentOfCopy = (100 * r.value) / copy.value;
  }
}

/** Writes the report as JSON (via a temporary file, so a reader never sees half of it). */
export function writeReport(report: BenchReport, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(tmp, path);
}

function fixed(v: number | undefined, digits: number): string {
  return v === undefined || !Number.isFinite(v) ? '' : v.toFixed(digits);
}

/** The report's figures as a text table. */
export function formatTable(report: BenchReport): string {
  const head = ['measurement', 'value', 'unit', 'median ms', '% of our copy', 'check'];
  const rows = report.results.map((r) => [
    r.label, fixed(r.value, 2), r.unit, fixed(r.medianMs, 4), fixed(r.percentOfCopy, 1),
    r.check ? r.check.maxRelError.toExponential(1) : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const top = line(head);
  return [top, '-'.repeat(top.length), ...rows.map(line)].join('\n');
}

// The training log: one JSON object per line, appended and flushed to disk as each record is
// made, so a crash loses nothing already reported.
import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { writeFileAtomic } from './files.js';

/** A record of one optimizer step. */
export interface StepRecord {
  /** Record kind. */
  type: 'step';
  /** Steps completed, this one included (1-based). */
  step: number;
  /** Mean loss over the step's response tokens (NaN / Infinity when the step was not finite). */
  loss: number;
  /** Learning rate used by this step. */
  lr: number;
  /** Gradient norm before clipping (NaN when not computed). */
  gradNorm: number;
  /** Response tokens the loss counted. */
  targetTokens: number;
  /** Input tokens processed (padding excluded). */
  inputTokens: number;
  /** Input tokens per second over this step. */
  tokensPerSecond: number;
  /** Wall time of this step in seconds. */
  seconds: number;
  /** Present and true when the update was skipped because something was not finite. */
  skipped?: boolean;
  /** Why the step was skipped. */
  message?: string;
}

/** A record of an evaluation. */
export interface EvalRecord {
  /** Record kind. */
  type: 'eval';
  /** Steps completed when it ran. */
  step: number;
  /** Token-mean loss on the held-out examples' responses. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Response tokens scored. */
  tokens: number;
  /** Multiple-choice accuracy (0..1), when questions were given. */
  mcAccuracy?: number;
  /** Length-normalised multiple-choice accuracy, when questions were given. */
  mcAccuracyNorm?: number;
  /** Number of questions scored. */
  mcQuestions?: number;
}

/** Any line of the training log. */
export type LogRecord = StepRecord | EvalRecord;

/** Appends records to a JSONL file, one `write` + `fdatasync` per record. */
export class JsonlLog {
  private fd: number | null;

  constructor(
    /** The file written to. */
    readonly path: string,
  ) {
    this.fd = openSync(path, 'a');
  }

  /** Appends one record and flushes it to disk. Non-finite numbers are written as strings ("NaN", "Infinity"). */
  append(record: object): void {
    if (this.fd === null) throw new Error(`JsonlLog: ${this.path} is closed`);
    writeSync(this.fd, `${JSON.stringify(record, finiteReplacer)}\n`);
    fdatasyncSync(this.fd);
  }

  /** Closes the file (further appends throw). */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** JSON has no NaN or Infinity: write them as strings so the line stays valid and the value is kept. */
function finiteReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

/** Turns the strings written for non-finite numbers back into numbers. */
function finiteReviver(_key: string, value: unknown): unknown {
  return value === 'NaN' ? NaN : value === 'Infinity' ? Infinity : value === '-Infinity' ? -Infinity : value;
}

/** Reads a training log; a missing file gives []. A torn last line (a crash mid-write) is dropped. */
export function readLog(path: string): LogRecord[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const out: LogRecord[] = [];
  lines.forEach((line, i) => {
    try {
      out.push(JSON.parse(line, finiteReviver) as LogRecord);
    } catch (error) {
      if (i === lines.length - 1) return;
      throw new Error(`${path}:${i + 1}: not valid JSON (${(error as Error).message})`);
    }
  });
  return out;
}

/**
 * Rewrites the log keeping only records of steps <= `step` (used when resuming from a
 * checkpoint taken before the last logged step). Atomic: a temporary file then a rename.
 */
export function truncateLog(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readLog(path).filter((r) => r.step <= step);
  writeFileAtomic(path, kept.map((r) => `${JSON.stringify(r, finiteReplacer)}\n`).join(''));
}

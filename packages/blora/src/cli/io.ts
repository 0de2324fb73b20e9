// Where a command writes: results to stdout, progress and messages to stderr.
import type { ProgressSink } from '../train/progress.js';

/** The command line's output streams (process.stdout / process.stderr, or captures in tests). */
export interface CliIO {
  /** Results (tables, JSON, generated text). */
  stdout: { write(text: string): unknown };
  /** Progress, notes and errors. */
  stderr: ProgressSink;
}

/** The process's own streams. */
export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: {
      write: (text: string) => process.stderr.write(text),
      isTTY: process.stderr.isTTY === true,
      columns: process.stderr.columns ?? 80,
    },
  };
}

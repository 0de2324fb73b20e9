// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise (log files,
// CI), with step / total, loss, tokens per second and the time left.

/** Where progress goes: a writable stream and whether it is a terminal. */
export interface ProgressSink {
  write(text: string): unknown;
  /** True on a terminal: the bar is redrawn in place. */
  isTTY?: boolean;
  /** Terminal width in characters (default 80). */
  columns?: number;
}

/** Formats seconds as `1h02m`, `3m05s` or `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

function formatLoss(loss: number): string {
  return Number.isFinite(loss) ? loss.toFixed(4) : String(loss);
}

function formatRate(tokensPerSecond: number): string {
  if (!Number.isFinite(tokensPerSecond)) return '?';
  return tokensPerSecond >= 1000 ? `${(tokensPerSecond / 1000).toFixed(1)}k` : tokensPerSecond.toFixed(0);
}

/** Reports training progress; `update` after each step, `note` for other messages, `finish` at the end. */
export class ProgressReporter {
  private readonly startTime = Date.now();
  private stepsThisRun = 0;
  private tokensThisRun = 0;
  private stepSeconds = 0;
  private drawn = false;
  /** On a plain stream, a line every this many steps (about 20 lines per run). */
  private readonly lineEvery: number;

  constructor(
    private readonly sink: ProgressSink,
    /** Total optimizer steps. */
    private readonly total: number,
    /** Steps already done when this run started (after a resume). */
    private readonly startStep = 0,
  ) {
    this.lineEvery = Math.max(1, Math.round((total - startStep) / 20));
  }

  /**
   * Reports a finished step that took `seconds`. Tokens per second count training time only;
   * the time left is projected from the wall time so far (evaluations and checkpoints included).
   */
  update(step: number, loss: number, inputTokens: number, seconds: number): void {
    this.stepsThisRun += 1;
    this.tokensThisRun += inputTokens;
    this.stepSeconds += seconds;
    const elapsed = (Date.now() - this.startTime) / 1000;
    const rate = this.stepSeconds > 0 ? this.tokensThisRun / this.stepSeconds : NaN;
    const eta = (elapsed / this.stepsThisRun) * (this.total - step);
    const stats = `loss ${formatLoss(loss)} | ${formatRate(rate)} tok/s | ETA ${formatDuration(eta)}`;
    if (this.sink.isTTY) {
      const width = Math.max(10, Math.min(30, (this.sink.columns ?? 80) - 70));
      const filled = Math.round((width * step) / this.total);
      const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
      this.sink.write(`\r\x1b[K[${bar}] ${step}/${this.total} | ${stats}`);
      this.drawn = true;
    } else if (step === this.total || step === this.startStep + 1 || (step - this.startStep) % this.lineEvery === 0) {
      this.sink.write(`step ${step}/${this.total} | ${stats}\n`);
    }
  }

  /** Prints a message on its own line (the bar, if any, is redrawn by the next update). */
  note(text: string): void {
    this.sink.write(`${this.drawn ? '\r\x1b[K' : ''}${text}\n`);
    this.drawn = false;
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.drawn) this.sink.write('\n');
    this.drawn = false;
  }
}

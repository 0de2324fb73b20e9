// Learning-rate schedules: a multiplier of each group's base learning rate per step, with
// the conventions of Hugging Face transformers' schedulers (which QLoRA training uses).

/** What a scheduler drives: anything with parameter groups that have an `lr` (every optimizer here). */
export interface HasParamGroups {
  readonly paramGroups: readonly { lr: number }[];
}

/** The learning-rate multiplier at a 0-based optimizer step. */
export type LRLambda = (step: number) => number;

function checkSteps(where: string, warmup: number, total?: number): void {
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`${where}: warmupSteps must be an integer >= 0, got ${warmup}`);
  if (total !== undefined && (!Number.isInteger(total) || total < warmup)) {
    throw new RangeError(`${where}: totalSteps must be an integer >= warmupSteps (${warmup}), got ${total}`);
  }
}

/** Linear warmup from 0 over `warmupSteps`, then constant (QLoRA's "constant" schedule with warmup). */
export function constantWithWarmup(warmupSteps: number): LRLambda {
  checkSteps('constantWithWarmup', warmupSteps);
  return (step) => (step < warmupSteps ? step / Math.max(1, warmupSteps) : 1);
}

/** Linear warmup, then linear decay to 0 at `totalSteps`. */
export function linearWithWarmup(warmupSteps: number, totalSteps: number): LRLambda {
  checkSteps('linearWithWarmup', warmupSteps, totalSteps);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  };
}

/**
 * Linear warmup, then cosine decay to `minRatio` (default 0) of the base rate at `totalSteps`
 * (half a cosine period by default; `cycles` = 0.5).
 */
export function cosineWithWarmup(warmupSteps: number, totalSteps: number, options: { cycles?: number; minRatio?: number } = {}): LRLambda {
  checkSteps('cosineWithWarmup', warmupSteps, totalSteps);
  const cycles = options.cycles ?? 0.5;
  const minRatio = options.minRatio ?? 0;
  if (!(minRatio >= 0 && minRatio <= 1)) throw new RangeError(`cosineWithWarmup: minRatio must be in [0, 1], got ${minRatio}`);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    const cosine = Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
    return minRatio + (1 - minRatio) * cosine;
  };
}

/**
 * Sets each parameter group's `lr` to its base rate times `lambda(step)`. Create it after the
 * optimizer (the rate for step 0 is applied at once) and call `step()` after each
 * `optimizer.step()`.
 */
export class LRScheduler {
  private readonly baseLrs: number[];
  private current = 0;

  constructor(private readonly optimizer: HasParamGroups, private readonly lambda: LRLambda) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }

  /** Optimizer steps taken so far (the step whose rate is in effect). */
  get stepCount(): number {
    return this.current;
  }

  /** The learning rate of each group now. */
  get lastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  /** Advances one step and applies the new rates. */
  step(): void {
    this.current += 1;
    this.apply();
  }

  private apply(): void {
    const factor = this.lambda(this.current);
    if (!Number.isFinite(factor) || factor < 0) throw new RangeError(`LRScheduler: schedule gave ${factor} at step ${this.current}`);
    this.optimizer.paramGroups.forEach((g, i) => (g.lr = this.baseLrs[i]! * factor));
  }

  /** The scheduler's state as numbers (`step`, `base_lr.<g>`), to save as JSON. */
  stateDict(): Record<string, number> {
    const out: Record<string, number> = { step: this.current };
    this.baseLrs.forEach((lr, i) => (out[`base_lr.${i}`] = lr));
    return out;
  }

  /** Restores `stateDict` and applies the rate of the restored step. */
  loadStateDict(state: Record<string, number>): void {
    if (!Number.isInteger(state.step) || state.step! < 0) throw new Error(`LRScheduler.loadStateDict: invalid step ${state.step}`);
    const lrs = this.baseLrs.map((_, i) => state[`base_lr.${i}`]);
    if (lrs.some((lr) => typeof lr !== 'number')) {
      throw new Error(`LRScheduler.loadStateDict: expected base_lr.0 .. base_lr.${this.baseLrs.length - 1}`);
    }
    lrs.forEach((lr, i) => (this.baseLrs[i] = lr!));
    this.current = state.step!;
    this.apply();
  }
}

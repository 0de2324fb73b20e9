// The training hyperparameters and their defaults: the recipe of the method's released
// scripts (the QLoRA defaults), except that the number of steps is usually set per run.

/** What to do when a step's loss or gradient norm is NaN or infinite. */
export type NonFinitePolicy = 'stop' | 'skip';

/** Hyperparameters of a training run. */
export interface TrainingConfig {
  /** Optimizer steps (default 10 000). */
  steps: number;
  /** Peak learning rate (default 2e-4). */
  lr: number;
  /** AdamW moment decay rates (default [0.9, 0.999]). */
  betas: [number, number];
  /** AdamW epsilon (default 1e-8). */
  eps: number;
  /** Decoupled weight decay (default 0). */
  weightDecay: number;
  /** Fraction of the steps spent warming the learning rate up from 0 (default 0.03; rounded up to whole steps). */
  warmupRatio: number;
  /** Gradients are clipped to this total 2-norm (default 0.3). */
  maxGradNorm: number;
  /** Examples per micro-batch (default 4). */
  batchSize: number;
  /** Micro-batches accumulated per optimizer step (default 4: 16 examples per step). */
  gradAccum: number;
  /** Stop the run (default) or skip the update when a step is not finite. */
  nonFinite: NonFinitePolicy;
  /** Evaluate every this many steps and after the last one (0 = only after the last one; needs evaluation data). */
  evalEvery: number;
  /** Examples per forward pass during evaluation (default 8). */
  evalBatchSize: number;
  /** Write a checkpoint every this many steps (0 = never; default 0). */
  checkpointEvery: number;
  /** Checkpoints kept on disk, newest first (0 = all; default 2). */
  keepCheckpoints: number;
}

/** The released recipe: AdamW 2e-4 (0.9, 0.999), no weight decay, constant schedule with 3 % warmup, clip 0.3, 4 x 4 batches. */
export const DEFAULT_TRAINING_CONFIG: Readonly<TrainingConfig> = Object.freeze({
  steps: 10_000,
  lr: 2e-4,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  weightDecay: 0,
  warmupRatio: 0.03,
  maxGradNorm: 0.3,
  batchSize: 4,
  gradAccum: 4,
  nonFinite: 'stop' as NonFinitePolicy,
  evalEvery: 0,
  evalBatchSize: 8,
  checkpointEvery: 0,
  keepCheckpoints: 2,
});

/** Fills in defaults and checks every field; errors name the field and the value. */
export function resolveTrainingConfig(partial: Partial<TrainingConfig> = {}): TrainingConfig {
  const c: TrainingConfig = { ...DEFAULT_TRAINING_CONFIG, betas: [...DEFAULT_TRAINING_CONFIG.betas], ...partial };
  const fail = (field: string, value: unknown, want: string): never => {
    // String(NaN) is 'NaN' where JSON.stringify would print null.
    const shown = typeof value === 'number' ? String(value) : JSON.stringify(value);
    throw new RangeError(`training config: ${field} must be ${want}, got ${shown}`);
  };
  const positiveInt = (k: keyof TrainingConfig) => {
    if (!Number.isInteger(c[k]) || (c[k] as number) < 1) fail(k, c[k], 'a positive integer');
  };
  const nonNegativeInt = (k: keyof TrainingConfig) => {
    if (!Number.isInteger(c[k]) || (c[k] as number) < 0) fail(k, c[k], 'a non-negative integer');
  };
  positiveInt('steps');
  positiveInt('batchSize');
  positiveInt('gradAccum');
  positiveInt('evalBatchSize');
  nonNegativeInt('evalEvery');
  nonNegativeInt('checkpointEvery');
  nonNegativeInt('keepCheckpoints');
  if (!(c.lr > 0 && Number.isFinite(c.lr))) fail('lr', c.lr, 'a positive number');
  if (!Array.isArray(c.betas) || c.betas.length !== 2 || !c.betas.every((b) => b >= 0 && b < 1)) fail('betas', c.betas, 'two numbers in [0, 1)');
  if (!(c.eps > 0)) fail('eps', c.eps, 'a positive number');
  if (!(c.weightDecay >= 0)) fail('weightDecay', c.weightDecay, 'a non-negative number');
  if (!(c.warmupRatio >= 0 && c.warmupRatio <= 1)) fail('warmupRatio', c.warmupRatio, 'a number in [0, 1]');
  if (!(c.maxGradNorm > 0)) fail('maxGradNorm', c.maxGradNorm, 'a positive number');
  if (c.nonFinite !== 'stop' && c.nonFinite !== 'skip') fail('nonFinite', c.nonFinite, "'stop' or 'skip'");
  return c;
}

/** Warmup steps as Hugging Face computes them: ceil(steps x warmupRatio). */
export function warmupSteps(config: Pick<TrainingConfig, 'steps' | 'warmupRatio'>): number {
  return Math.ceil(config.steps * config.warmupRatio);
}

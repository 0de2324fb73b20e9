// One training step as the PEFT peer takes it (forward with the next-token loss over every
// position, backward, AdamW on the adapters, gradients dropped), and the timing of a run of
// such steps. Device-agnostic: the caller supplies the device's synchronize().
import { performance } from 'node:perf_hooks';
import { profileOps, tidy, type OpProfile, type Tensor } from '@blora/tensor';
import { AdamW } from '@blora/autograd';
import type { TrainModel } from './train-model.js';

/** How a run of steps is taken. */
export interface StepRunOptions {
  /** Untimed steps first (allocator warm-up, first-call costs). */
  readonly warmup: number;
  /** Timed steps wanted. */
  readonly steps: number;
  /** Stop once the timed steps have taken this long (at least one step is timed). */
  readonly budgetSeconds: number;
  /** AdamW learning rate (weight decay 0.01, betas 0.9 / 0.999, eps 1e-8: torch's defaults). */
  readonly lr: number;
  /** Waits for the device's queued work. */
  readonly synchronize: () => void;
  /** After the timed steps, take one more step with every op timed on this device (see `profileOps`). */
  readonly profileDevice?: string;
  /** Called after every step with its index (warm-up steps count from 0, negative), time and loss. */
  readonly onStep?: (index: number, ms: number, loss: number) => void;
}

/** Times and losses of a run of steps. */
export interface StepRun {
  /** Wall time of each warm-up step in ms. */
  readonly warmupMs: number[];
  /** Wall time of each timed step in ms. */
  readonly stepMs: number[];
  /** Loss of every step, warm-up first. */
  readonly losses: number[];
  /** True when the budget cut the timed steps short. */
  readonly budgetHit: boolean;
  /** The op profile of the extra step, when one was asked for. */
  readonly profile?: OpProfile;
}

/**
 * Queues one step of `built` on `ids` [B, T] and returns the loss tensor (not read back, so
 * the host does not wait for the device in the middle of the step): mean cross entropy of
 * every next token, as transformers computes it with `labels = input_ids`; backward; one
 * AdamW update of the adapters; gradients dropped.
 */
export function trainStep(built: TrainModel, ids: Tensor, optimizer: AdamW): Tensor {
  const loss = tidy(() => {
    const l = built.model.loss(ids);
    l.backward();
    return l;
  });
  optimizer.step();
  optimizer.zeroGrad();
  return loss;
}

/**
 * Runs `warmup` + up to `steps` training steps; each step's wall time runs from its start to
 * the end of a `synchronize()` after it, so it covers our host-side dispatch as well as the
 * device's work. The loss is read back after the clock stops. Throws on a non-finite loss.
 */
export function runTrainingSteps(built: TrainModel, ids: Tensor, options: StepRunOptions): StepRun {
  const optimizer = new AdamW(built.attached.trainableParameters(), { lr: options.lr });
  const warmupMs: number[] = [];
  const stepMs: number[] = [];
  const losses: number[] = [];
  let budgetHit = false;
  let profile: OpProfile | undefined;
  const timedStep = (index: number): number => {
    const start = performance.now();
    const loss = trainStep(built, ids, optimizer);
    options.synchronize();
    const ms = performance.now() - start;
    const value = loss.item();
    loss.dispose();
    if (!Number.isFinite(value)) throw new Error(`training step ${index}: the loss is ${value}`);
    losses.push(value);
    options.onStep?.(index, ms, value);
    return ms;
  };
  try {
    options.synchronize();
    for (let i = 0; i < options.warmup; i++) warmupMs.push(timedStep(i - options.warmup));
    let spent = 0;
    for (let i = 0; i < options.steps; i++) {
      if (i > 0 && spent >= options.budgetSeconds * 1000) {
        budgetHit = true;
        break;
      }
      const ms = timedStep(i);
      stepMs.push(ms);
      spent += ms;
    }
    if (options.profileDevice !== undefined) {
      const device = options.profileDevice;
      const { result: loss, profile: p } = profileOps(device, () => trainStep(built, ids, optimizer));
      loss.dispose();
      profile = p;
    }
  } finally {
    optimizer.zeroGrad();
    optimizer.dispose();
  }
  return { warmupMs, stepMs, losses, budgetHit, ...(profile ? { profile } : {}) };
}

// The training loop: micro-batches with gradient accumulation, AdamW with the recipe's
// schedule and clipping, a guard against non-finite steps, periodic evaluation, a JSONL log,
// atomic checkpoints and an exact resume.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader, defaultGenerator, tidy, writeSafetensors, type Generator, type Tensor } from '@blora/tensor';
import { AdamW, LRScheduler, assignInPlace, clipGradNorm, constantWithWarmup, noGrad, releaseGraph } from '@blora/autograd';
import type { InstructionDataset, BatchPlan } from '../data/dataset.js';
import type { MultipleChoiceQuestion } from '../eval/multiple-choice.js';
import { evaluateMultipleChoice } from '../eval/multiple-choice.js';
import { heldOutLoss } from '../eval/perplexity.js';
import {
  TRAINER_STATE_FORMAT, latestCheckpoint, pruneCheckpoints, readOptimizerState, readTrainerState, writeCheckpoint, type TrainerState,
} from './checkpoint.js';
import { resolveTrainingConfig, warmupSteps, type TrainingConfig } from './config.js';
import { writeFileAtomic } from './files.js';
import { firstNonFinite, firstNonFiniteGradient, NonFiniteError } from './guard.js';
import { JsonlLog, truncateLog, type EvalRecord, type StepRecord } from './log.js';
import { causalLmLoss, trainableParameters, type CausalLM } from './model.js';
import { ProgressReporter, type ProgressSink } from './progress.js';
import { lossCurveSvg } from './svg.js';

/** Saves and restores the trainable weights in a directory (for example as a PEFT adapter). */
export interface WeightsIO {
  /** Writes the weights into `dir` (created already). */
  save(dir: string): void;
  /** Loads the weights from `dir` into the model, in place. */
  load(dir: string): void;
}

/** Everything a `Trainer` needs besides the model and the data. */
export interface TrainerOptions extends Partial<TrainingConfig> {
  /** Where log.jsonl, loss.svg and checkpoints/ go; nothing is written when absent. */
  outDir?: string;
  /** Held-out examples for the periodic evaluation loss. */
  evalData?: InstructionDataset;
  /** Multiple-choice questions scored at each evaluation (tokenized with the training data's tokenizer). */
  evalQuestions?: readonly MultipleChoiceQuestion[];
  /** How checkpoints store the trainable weights (default: `trainable.safetensors` by parameter name). */
  weights?: WeightsIO;
  /** Random generators to save and restore besides @blora/tensor's default one (e.g. dropout streams). */
  generators?: Record<string, Generator>;
  /** Where progress goes (default: none). */
  progress?: ProgressSink;
  /** Called after each step with its record. */
  onStep?: (record: StepRecord) => void;
}

/** What a finished (or partial) run reports. */
export interface TrainResult {
  /** Steps completed. */
  steps: number;
  /** Loss of the first step of the run's history. */
  firstLoss: number;
  /** Mean loss of the last (up to) 10 steps. */
  finalLoss: number;
  /** Steps whose update was skipped. */
  skippedSteps: number;
  /** Evaluations made. */
  evals: EvalRecord[];
  /** Wall time of this call, in seconds. */
  seconds: number;
  /** Input tokens processed in this call. */
  inputTokens: number;
}

/**
 * Trains the parameters of `model` that require grad on `data`. Create it, optionally
 * `resume()`, then `run()`. Each micro-batch runs inside `tidy`, so memory returns to the
 * same level after every step.
 */
export class Trainer {
  /** The resolved hyperparameters. */
  readonly config: TrainingConfig;
  /** The trained parameters by name. */
  readonly params: [string, Tensor][];
  /** AdamW over `params`. */
  readonly optimizer: AdamW;
  /** The constant-with-warmup learning-rate schedule. */
  readonly scheduler: LRScheduler;
  /** Steps completed. */
  step = 0;
  /** Loss of every completed step. */
  readonly history: { step: number; loss: number }[] = [];
  /** Every evaluation made. */
  readonly evals: EvalRecord[] = [];
  private readonly plan: BatchPlan;
  private readonly generators: Record<string, Generator>;
  private log: JsonlLog | null = null;
  private skipped = 0;

  constructor(
    /** The model (adapters attached: only parameters that require grad are trained). */
    readonly model: CausalLM,
    /** The training data. */
    readonly data: InstructionDataset,
    private readonly options: TrainerOptions = {},
  ) {
    this.config = resolveTrainingConfig(pickConfig(options));
    this.params = trainableParameters(model);
    if (this.params.length === 0) {
      throw new Error('Trainer: the model has no parameters that require grad (attach adapters or unfreeze something first)');
    }
    this.plan = { batchSize: this.config.batchSize, gradAccum: this.config.gradAccum };
    this.optimizer = new AdamW(this.params.map(([, t]) => t), {
      lr: this.config.lr, betas: this.config.betas, eps: this.config.eps, weightDecay: this.config.weightDecay,
    });
    this.scheduler = new LRScheduler(this.optimizer, constantWithWarmup(warmupSteps(this.config)));
    this.generators = { default: defaultGenerator, ...(options.generators ?? {}) };
  }

  /** The checkpoint directory, when writing to an output directory. */
  get checkpointRoot(): string | null {
    return this.options.outDir ? join(this.options.outDir, 'checkpoints') : null;
  }

  /**
   * Continues from a checkpoint (default: the newest under `<outDir>/checkpoints`): weights,
   * optimizer moments, schedule, random generators, data position and history are restored,
   * so the run goes on exactly as if it had not stopped. Log lines after the checkpoint's step
   * are dropped. Returns the step reached.
   */
  resume(checkpointDir?: string): number {
    const dir = checkpointDir ?? (this.checkpointRoot ? latestCheckpoint(this.checkpointRoot) : null);
    if (!dir) throw new Error(`Trainer.resume: no checkpoint found${this.checkpointRoot ? ` under ${this.checkpointRoot}` : ''}`);
    const state = readTrainerState(dir);
    const expect = (what: string, saved: number, now: number) => {
      if (saved !== now) throw new Error(`Trainer.resume: ${dir} was made with ${what} ${saved}, this run has ${now}; resume with the same settings`);
    };
    expect('steps', state.totalSteps, this.config.steps);
    expect('batch size', state.batchSize, this.plan.batchSize);
    expect('gradient accumulation', state.gradAccum, this.plan.gradAccum);
    expect('a data set of size', state.dataSize, this.data.size);
    expect('data seed', state.dataSeed, this.data.order.seed);
    if (state.weights === 'adapter') {
      if (!this.options.weights) throw new Error(`Trainer.resume: ${dir} stores an adapter directory; pass the weights loader`);
      this.options.weights.load(join(dir, 'adapter'));
    } else {
      this.loadTrainable(join(dir, 'trainable.safetensors'));
    }
    const optimizerState = readOptimizerState(dir);
    try {
      this.optimizer.loadStateDict(optimizerState);
    } finally {
      for (const t of Object.values(optimizerState.tensors)) t.dispose();
    }
    this.scheduler.loadStateDict(state.scheduler);
    for (const [name, g] of Object.entries(this.generators)) {
      const saved = state.generators[name];
      if (!saved) throw new Error(`Trainer.resume: ${dir} has no state for the random generator '${name}'`);
      g.setState(saved);
    }
    this.step = state.step;
    this.history.splice(0, this.history.length, ...state.history);
    this.evals.splice(0, this.evals.length, ...state.evals);
    this.skipped = state.skippedSteps ?? 0;
    if (this.options.outDir) truncateLog(join(this.options.outDir, 'log.jsonl'), state.step);
    return this.step;
  }

  /** Runs optimizer steps until `until` steps are done (default: all), evaluating and checkpointing on schedule. */
  run(options: { until?: number } = {}): TrainResult {
    const end = options.until ?? this.config.steps;
    if (!Number.isInteger(end) || end < 0 || end > this.config.steps) {
      throw new RangeError(`Trainer.run: until must be an integer in [0, ${this.config.steps}], got ${end}`);
    }
    const started = Date.now();
    let tokens = 0;
    const progress = this.options.progress ? new ProgressReporter(this.options.progress, this.config.steps, this.step) : null;
    if (this.options.outDir) {
      mkdirSync(this.options.outDir, { recursive: true });
      this.log = new JsonlLog(join(this.options.outDir, 'log.jsonl'));
    }
    try {
      while (this.step < end) {
        const record = this.trainStep();
        tokens += record.inputTokens;
        progress?.update(record.step, record.loss, record.inputTokens, record.seconds);
        if (record.skipped) progress?.note(record.message ?? `step ${record.step} skipped`);
        const { evalEvery, checkpointEvery } = this.config;
        const last = this.step === this.config.steps;
        if (this.canEvaluate() && (last || (evalEvery > 0 && this.step % evalEvery === 0))) {
          const e = this.evaluate();
          progress?.note(describeEval(e));
        }
        if (checkpointEvery > 0 && this.step % checkpointEvery === 0) this.saveCheckpoint();
      }
      if (this.step === this.config.steps) this.writeLossCurve();
    } finally {
      progress?.finish();
      this.log?.close();
      this.log = null;
    }
    const recent = this.history.slice(-10).map((h) => h.loss);
    return {
      steps: this.step,
      firstLoss: this.history[0]?.loss ?? NaN,
      finalLoss: recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : NaN,
      skippedSteps: this.skipped,
      evals: [...this.evals],
      seconds: (Date.now() - started) / 1000,
      inputTokens: tokens,
    };
  }

  /** One optimizer step over `gradAccum` micro-batches. Returns its record (also logged). */
  trainStep(): StepRecord {
    if (this.step >= this.config.steps) throw new Error(`Trainer.trainStep: all ${this.config.steps} steps are done`);
    const started = performance.now();
    const stepNumber = this.step + 1;
    const lr = this.optimizer.paramGroups[0]!.lr;
    const micro = this.data.stepIndices(this.step, this.plan);
    const targetTokens = micro.reduce((n, ids) => n + this.data.targetTokensOf(ids), 0);
    this.model.train?.(true);
    let loss = 0;
    let inputTokens = 0;
    let problem: string | null = null;
    let blamed: string | null = null;
    for (const ids of micro) {
      const value = tidy(() => {
        const batch = this.data.batchOf(ids);
        inputTokens += batch.inputTokens;
        if (batch.targetTokens === 0) return 0;
        const l = causalLmLoss(this.model.forward(batch.inputIds), batch.targets, targetTokens);
        const v = l.item();
        if (Number.isFinite(v)) l.backward();
        else releaseGraph(l);
        return v;
      });
      loss += value;
      if (!Number.isFinite(value)) {
        blamed = firstNonFinite(this.params) ?? firstNonFinite(this.model.namedParameters());
        problem = `step ${stepNumber}: the loss is ${value}; ` +
          (blamed ? `first non-finite parameter: '${blamed}'` : 'every parameter is finite (the activations overflowed)');
        break;
      }
    }
    let gradNorm = NaN;
    if (!problem) {
      gradNorm = clipGradNorm(this.params.map(([, t]) => t), this.config.maxGradNorm);
      if (!Number.isFinite(gradNorm)) {
        blamed = firstNonFiniteGradient(this.params);
        problem = `step ${stepNumber}: the gradient norm is ${gradNorm}; first non-finite gradient: '${blamed ?? '?'}'`;
      }
    }
    if (problem) this.optimizer.zeroGrad();
    else {
      this.optimizer.step();
      this.optimizer.zeroGrad();
    }
    const seconds = (performance.now() - started) / 1000;
    const record: StepRecord = {
      type: 'step', step: stepNumber, loss, lr, gradNorm, targetTokens, inputTokens,
      tokensPerSecond: seconds > 0 ? inputTokens / seconds : 0, seconds,
      ...(problem ? { skipped: true, message: problem } : {}),
    };
    this.appendLog(record);
    if (problem && this.config.nonFinite === 'stop') {
      throw new NonFiniteError(`${problem}; stopping (no update was applied)`, stepNumber, blamed);
    }
    if (problem) this.skipped += 1;
    this.scheduler.step();
    this.step = stepNumber;
    this.history.push({ step: stepNumber, loss });
    this.options.onStep?.(record);
    return record;
  }

  private canEvaluate(): boolean {
    return this.options.evalData !== undefined || (this.options.evalQuestions?.length ?? 0) > 0;
  }

  /** Held-out loss (and multiple-choice accuracy when questions were given) now; logged and kept. */
  evaluate(): EvalRecord {
    const record: EvalRecord = { type: 'eval', step: this.step, loss: NaN, perplexity: NaN, tokens: 0 };
    if (this.options.evalData) {
      const r = heldOutLoss(this.model, this.options.evalData, this.config.evalBatchSize);
      Object.assign(record, { loss: r.loss, perplexity: r.perplexity, tokens: r.tokens });
    }
    if (this.options.evalQuestions?.length) {
      const mc = evaluateMultipleChoice(this.model, this.data.tokenizer, this.options.evalQuestions, {
        batchSize: this.config.evalBatchSize, device: this.params[0]![1].device,
      });
      Object.assign(record, { mcAccuracy: mc.accuracy, mcAccuracyNorm: mc.accuracyNorm, mcQuestions: mc.count });
    }
    this.evals.push(record);
    this.appendLog(record);
    return record;
  }

  /** Appends to `<outDir>/log.jsonl`: through the open log during `run`, else opening it for this record. */
  private appendLog(record: StepRecord | EvalRecord): void {
    if (this.log) this.log.append(record);
    else if (this.options.outDir && existsSync(this.options.outDir)) {
      const log = new JsonlLog(join(this.options.outDir, 'log.jsonl'));
      try {
        log.append(record);
      } finally {
        log.close();
      }
    }
  }

  /** The state a checkpoint stores for this trainer (besides weights and optimizer). */
  private trainerState(): TrainerState {
    const generators: TrainerState['generators'] = {};
    for (const [name, g] of Object.entries(this.generators)) generators[name] = g.getState();
    return {
      format: TRAINER_STATE_FORMAT, version: 1,
      step: this.step, totalSteps: this.config.steps,
      dataPosition: this.data.positionOfStep(this.step, this.plan), dataSize: this.data.size, dataSeed: this.data.order.seed,
      batchSize: this.plan.batchSize, gradAccum: this.plan.gradAccum,
      scheduler: this.scheduler.stateDict(), generators,
      history: [...this.history], evals: [...this.evals], skippedSteps: this.skipped,
      weights: this.options.weights ? 'adapter' : 'trainable',
    };
  }

  /** Writes a checkpoint of the current step under `<outDir>/checkpoints` (or `root`); returns its path. */
  saveCheckpoint(root?: string): string {
    const where = root ?? this.checkpointRoot;
    if (!where) throw new Error('Trainer.saveCheckpoint: no output directory (set outDir or pass a directory)');
    const optimizer = this.optimizer.stateDict();
    let dir: string;
    try {
      dir = writeCheckpoint(where, {
        state: this.trainerState(),
        optimizer,
        writeWeights: (tmp) => {
          if (this.options.weights) {
            mkdirSync(join(tmp, 'adapter'));
            this.options.weights.save(join(tmp, 'adapter'));
          } else {
            writeSafetensors(join(tmp, 'trainable.safetensors'), Object.fromEntries(this.params), { format: 'blora-trainable' });
          }
        },
      });
    } finally {
      for (const t of Object.values(optimizer.tensors)) t.dispose();
    }
    pruneCheckpoints(where, this.config.keepCheckpoints);
    this.writeLossCurve();
    return dir;
  }

  /** Writes `<outDir>/loss.svg` from the history (no-op without an output directory). */
  writeLossCurve(): void {
    if (!this.options.outDir || !existsSync(this.options.outDir)) return;
    const evals = this.evals.filter((e) => Number.isFinite(e.loss));
    writeFileAtomic(join(this.options.outDir, 'loss.svg'), lossCurveSvg(this.history, evals));
  }

  private loadTrainable(path: string): void {
    const reader = SafetensorsReader.open(path);
    try {
      const names = new Set(reader.names());
      for (const [name] of this.params) {
        if (!names.has(name)) throw new Error(`Trainer.resume: ${path} lacks the trainable parameter '${name}'`);
        names.delete(name);
      }
      if (names.size) throw new Error(`Trainer.resume: ${path} has tensors the model does not train: ${[...names].join(', ')}`);
      noGrad(() => {
        for (const [name, p] of this.params) {
          const saved = reader.readTensor(name);
          if (saved.rank !== p.rank || saved.shape.some((d, i) => d !== p.shape[i])) {
            saved.dispose();
            throw new Error(`Trainer.resume: '${name}' has shape [${saved.shape.join(', ')}] in ${path}, the model has [${p.shape.join(', ')}]`);
          }
          assignInPlace(p, saved);
          saved.dispose();
        }
      });
    } finally {
      reader.close();
    }
  }
}

function pickConfig(options: TrainerOptions): Partial<TrainingConfig> {
  const keys: (keyof TrainingConfig)[] = ['steps', 'lr', 'betas', 'eps', 'weightDecay', 'warmupRatio', 'maxGradNorm', 'batchSize',
    'gradAccum', 'nonFinite', 'evalEvery', 'evalBatchSize', 'checkpointEvery', 'keepCheckpoints'];
  const out: Partial<TrainingConfig> = {};
  for (const k of keys) if (options[k] !== undefined) (out as Record<string, unknown>)[k] = options[k];
  return out;
}

/** One line describing an evaluation. */
export function describeEval(e: EvalRecord): string {
  const parts = [`eval @ step ${e.step}`];
  if (e.tokens > 0) parts.push(`held-out loss ${e.loss.toFixed(4)} (ppl ${e.perplexity.toFixed(2)})`);
  if (e.mcAccuracy !== undefined) {
    parts.push(`MC acc ${(100 * e.mcAccuracy).toFixed(1)}% / norm ${(100 * (e.mcAccuracyNorm ?? NaN)).toFixed(1)}% (${e.mcQuestions} q)`);
  }
  return parts.join(' | ');
}

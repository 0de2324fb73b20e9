// Instruction data ready for training: examples tokenized on first use, visited in a seeded
// endless order, grouped into the micro-batches of each optimizer step.
import type { AlpacaExample } from './alpaca.js';
import { collate, type Batch } from './batch.js';
import { DataOrder } from './order.js';
import { DEFAULT_LIMITS, IGNORE_INDEX, encodeExample, type EncodedExample, type SequenceLimits, type TextTokenizer } from './tokenize.js';

/** How examples are grouped per optimizer step. */
export interface BatchPlan {
  /** Examples per micro-batch (one forward / backward). */
  batchSize: number;
  /** Micro-batches per optimizer step (gradient accumulation). */
  gradAccum: number;
}

/** Options of `InstructionDataset`. */
export interface InstructionDatasetOptions {
  /** Source / target token limits (default 384 / 128). */
  limits?: SequenceLimits;
  /** Seed of the shuffles (default 0). */
  seed?: number;
  /** Shuffle each pass (default true). */
  shuffle?: boolean;
  /** Device of the batch tensors (default 'cpu'). */
  device?: string;
}

/** Tokenized instruction examples in a reproducible endless order. */
export class InstructionDataset {
  /** The visiting order. */
  readonly order: DataOrder;
  /** Token limits applied to every example. */
  readonly limits: SequenceLimits;
  private readonly device: string;
  /** Token ids of each example once tokenized (compact: labels follow from the source length). */
  private readonly ids: (Int32Array | undefined)[];
  private readonly sourceLengths: Int32Array;

  constructor(
    /** The examples. */
    readonly examples: readonly AlpacaExample[],
    /** The tokenizer that turns them into ids. */
    readonly tokenizer: TextTokenizer,
    options: InstructionDatasetOptions = {},
  ) {
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.order = new DataOrder(examples.length, {
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(options.shuffle !== undefined ? { shuffle: options.shuffle } : {}),
    });
    this.device = options.device ?? 'cpu';
    this.ids = new Array(examples.length);
    this.sourceLengths = new Int32Array(examples.length);
  }

  /** Number of examples. */
  get size(): number {
    return this.examples.length;
  }

  /** The tokenized example `index` (tokenized once, then kept as compact ids). */
  encode(index: number): EncodedExample {
    let ids = this.ids[index];
    if (!ids) {
      const example = this.examples[index];
      if (!example) throw new RangeError(`InstructionDataset: no example ${index} (size ${this.size})`);
      const e = encodeExample(this.tokenizer, example, this.limits);
      ids = Int32Array.from(e.inputIds);
      this.ids[index] = ids;
      this.sourceLengths[index] = e.sourceLength;
      return e;
    }
    const sourceLength = this.sourceLengths[index]!;
    const inputIds = Array.from(ids);
    const labels = inputIds.map((id, t) => (t < sourceLength ? IGNORE_INDEX : id));
    return { inputIds, labels, sourceLength };
  }

  /** A padded batch of the given example indices. */
  batchOf(indices: readonly number[]): Batch {
    return collate(indices.map((i) => this.encode(i)), { padId: this.tokenizer.padId ?? 0, device: this.device });
  }

  /** Stream position of the first example of optimizer step `step` (0-based). */
  positionOfStep(step: number, plan: BatchPlan): number {
    return step * plan.batchSize * plan.gradAccum;
  }

  /** Example indices of each micro-batch of optimizer step `step`. */
  stepIndices(step: number, plan: BatchPlan): number[][] {
    checkPlan(plan);
    const start = this.positionOfStep(step, plan);
    const out: number[][] = [];
    for (let m = 0; m < plan.gradAccum; m++) out.push(this.order.range(start + m * plan.batchSize, plan.batchSize));
    return out;
  }

  /** Number of response tokens the loss counts over these examples (the targets `collate` would keep). */
  targetTokensOf(indices: readonly number[]): number {
    let n = 0;
    for (const i of indices) {
      const labels = this.encode(i).labels;
      for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) n++;
    }
    return n;
  }

  /** The micro-batches of optimizer step `step` (the caller disposes their tensors). */
  stepBatches(step: number, plan: BatchPlan): Batch[] {
    return this.stepIndices(step, plan).map((ids) => this.batchOf(ids));
  }

  /** Every example once, in file order, in batches of `batchSize` (for evaluation). */
  *sequentialBatches(batchSize: number): IterableIterator<Batch> {
    checkPlan({ batchSize, gradAccum: 1 });
    for (let start = 0; start < this.size; start += batchSize) {
      const ids: number[] = [];
      for (let i = start; i < Math.min(this.size, start + batchSize); i++) ids.push(i);
      yield this.batchOf(ids);
    }
  }
}

function checkPlan(plan: BatchPlan): void {
  for (const [k, v] of Object.entries(plan)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${String(v)}`);
  }
}

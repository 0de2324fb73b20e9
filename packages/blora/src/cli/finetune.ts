// `blora finetune`: load a base model (quantized on load as the method asks), attach adapters,
// train on Alpaca JSONL with the released recipe, and write the adapter (PEFT layout), the log,
// the loss curve and a summary into --out.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Generator } from '@blora/tensor';
import { readAlpacaJsonl, type AlpacaExample } from '../data/alpaca.js';
import { InstructionDataset } from '../data/dataset.js';
import { splitHeldOut } from '../data/split.js';
import { readMultipleChoiceJsonl, type MultipleChoiceQuestion } from '../eval/multiple-choice.js';
import { attachAdapters } from '../attach.js';
import type { AdapterForm } from '../adapters/adapter.js';
import { saveAdapter } from '../peft.js';
import { formatParameterSummary, summarizeParameters } from '../summary.js';
import { latestCheckpoint } from '../train/checkpoint.js';
import { DEFAULT_TRAINING_CONFIG, type NonFinitePolicy } from '../train/config.js';
import { jsonText, writeFileAtomic } from '../train/files.js';
import { Trainer } from '../train/trainer.js';
import { FlagReader, formatHelp, parseFlags, type CommandSpec } from './args.js';
import { EMBEDDED_DATA, EMBEDDED_MC, EMBEDDED_MODEL, existing } from './assets.js';
import { UsageError } from './errors.js';
import type { CliIO } from './io.js';
import {
  CLI_METHODS, adapterMethodOf, adapterWeightsIO, checkModelDir, defaultQuantOf, loadBaseModel, prepareDevice, quantizeOptionsFor,
  parseBlockShape, readRunSettings, checkBlocksInsideTile, type BaseQuant, type BaseQuantSettings, type BlockShape, type CliMethod,
} from './model-io.js';

/** The flags of `blora finetune`. */
export const FINETUNE_SPEC: CommandSpec = {
  name: 'finetune',
  usage: 'blora finetune [--model DIR] [--data FILE.jsonl] [--method qblora] [options]',
  summary: 'Fine-tune adapters on a (4-bit) base model with the released recipe: AdamW 2e-4, constant schedule with 3% warmup, clip 0.3.',
  flags: [
    { name: 'model', type: 'string', value: 'DIR', help: 'Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer.json)', defaultText: 'the embedded tiny model' },
    { name: 'data', type: 'string', value: 'FILE', help: 'training examples, Alpaca JSONL (instruction, optional input, output)', defaultText: 'the embedded WordNet set' },
    { name: 'method', type: 'string', value: 'M', help: 'lora (dense base), qlora (LoRA on NF4), qblora (Q-BLoRA on NF4), qablora (QA-BLoRA on INT4)', defaultText: 'qblora' },
    { name: 'rank', type: 'string', value: 'R', help: 'nominal rank r (scaling s = alpha / r; Q-BLoRA factors have rank r x lambda)', defaultText: '64' },
    { name: 'alpha', type: 'string', value: 'A', help: 'LoRA alpha', defaultText: '16' },
    { name: 'dropout', type: 'string', value: 'P', help: 'dropout on the adapter input', defaultText: '0' },
    { name: 'lambda', type: 'string', value: 'L', help: 'balancing factor: Q-BLoRA lambda, or QA-BLoRA lambda-in = lambda-out', defaultText: '2 for qblora' },
    { name: 'lambda-in', type: 'string', value: 'L', help: 'input pooling factor (Q-BLoRA, QA-BLoRA)', defaultText: '2 for qblora, 4 for qablora' },
    { name: 'lambda-out', type: 'string', value: 'L', help: 'output repeat factor (Q-BLoRA, QA-BLoRA)', defaultText: 'lambda-in for qblora, 8 for qablora' },
    { name: 'form', type: 'string', value: 'F', help: "qablora's adapter: matrix (the paper's single M) or factors (B·A of rank r x lambda-in, as QA-LoRA)", defaultText: 'matrix' },
    { name: 'quant', type: 'string', value: 'Q', help: 'base format: nf4, int4 or none', defaultText: 'none for lora, int4 for qablora, else nf4' },
    { name: 'block', type: 'string', value: 'N', help: 'quantization block: NF4 blocksize, or INT4 group size (qablora: elements of a --tile block)', defaultText: '64 for nf4, 32 for int4' },
    { name: 'tile', type: 'string', value: 'RxC', help: 'qablora: INT4 blocks of R rows x C columns; R must divide lambda-out and C lambda-in, so every block lies in one adapter tile', defaultText: 'lambda-out x lambda-in' },
    { name: 'steps', type: 'string', value: 'N', help: 'optimizer steps', defaultText: String(DEFAULT_TRAINING_CONFIG.steps) },
    { name: 'lr', type: 'string', value: 'X', help: 'peak learning rate', defaultText: '2e-4' },
    { name: 'batch', type: 'string', value: 'N', help: 'examples per micro-batch', defaultText: String(DEFAULT_TRAINING_CONFIG.batchSize) },
    { name: 'grad-accum', type: 'string', value: 'N', help: 'micro-batches per optimizer step', defaultText: String(DEFAULT_TRAINING_CONFIG.gradAccum) },
    { name: 'warmup-ratio', type: 'string', value: 'X', help: 'fraction of the steps spent warming up', defaultText: '0.03' },
    { name: 'max-grad-norm', type: 'string', value: 'X', help: 'gradient clipping norm', defaultText: '0.3' },
    { name: 'seed', type: 'string', value: 'N', help: 'seed of the data order, held-out split, adapter init and dropout', defaultText: '42' },
    { name: 'max-source-len', type: 'string', value: 'N', help: 'most tokens of bos + prompt', defaultText: '384' },
    { name: 'max-target-len', type: 'string', value: 'N', help: 'most tokens of response + eos', defaultText: '128' },
    { name: 'device', type: 'string', value: 'D', help: 'cpu or cuda', defaultText: 'cpu' },
    { name: 'out', type: 'string', value: 'DIR', help: 'output directory (must be new or empty unless --resume)', defaultText: 'blora-out' },
    { name: 'resume', type: 'boolean', help: 'continue the run in --out from its newest checkpoint (settings come from its run.json)' },
    { name: 'eval-every', type: 'string', value: 'N', help: 'evaluate every N steps (0: only after the last step)', defaultText: '0' },
    { name: 'eval-data', type: 'string', value: 'FILE', help: 'held-out examples (Alpaca JSONL) for the evaluation loss', defaultText: 'hold out --eval-size examples of --data' },
    { name: 'eval-size', type: 'string', value: 'N', help: 'examples of --data held out when --eval-data is not given (0: none)', defaultText: '64' },
    { name: 'mc', type: 'string', value: 'FILE', help: 'multiple-choice questions (JSONL) scored at each evaluation', defaultText: 'the embedded test with the embedded data' },
    { name: 'mc-limit', type: 'string', value: 'N', help: 'score only the first N questions (0: all)', defaultText: '100' },
    { name: 'eval-batch', type: 'string', value: 'N', help: 'sequences per forward pass during evaluation', defaultText: '8' },
    { name: 'save-every', type: 'string', value: 'N', help: 'write a checkpoint every N steps (0: never)', defaultText: '1000' },
    { name: 'keep-checkpoints', type: 'string', value: 'N', help: 'newest checkpoints kept (0: all)', defaultText: '2' },
    { name: 'non-finite', type: 'string', value: 'P', help: 'on a NaN/Inf loss or gradient: stop, or skip the update', defaultText: 'stop' },
    { name: 'gradient-checkpointing', type: 'boolean', help: 'recompute each block in the backward pass (less memory, more time)' },
    { name: 'quiet', type: 'boolean', help: 'no progress output' },
  ],
  notes: 'Writes into --out: adapter_config.json + adapter_model.safetensors (PEFT layout), log.jsonl (one line per step\n' +
    'and evaluation), loss.svg, summary.json, run.json (the settings) and checkpoints/.',
};

/** Every setting of a fine-tuning run (what run.json stores). */
export interface FinetuneSettings {
  model: string;
  data: string;
  method: CliMethod;
  rank: number;
  alpha: number;
  dropout: number;
  lambdaIn: number;
  lambdaOut: number;
  /** QA-BLoRA's adapter form ('matrix' or 'factors'); the other methods always train factors. */
  form: AdapterForm;
  quant: BaseQuant;
  block: number | null;
  /** QA-BLoRA on INT4: the shape of the base's 2-D blocks, which lie inside the λout x λin tiles; null otherwise. */
  blockShape: BlockShape | null;
  steps: number;
  lr: number;
  batch: number;
  gradAccum: number;
  warmupRatio: number;
  maxGradNorm: number;
  seed: number;
  maxSourceLen: number;
  maxTargetLen: number;
  device: string;
  evalEvery: number;
  evalData: string | null;
  evalSize: number;
  mc: string | null;
  mcLimit: number;
  evalBatch: number;
  saveEvery: number;
  keepCheckpoints: number;
  nonFinite: NonFinitePolicy;
  gradientCheckpointing: boolean;
}

function requireFile(path: string, flag: string): string {
  if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`--${flag} ${path}: no such file`);
  return resolve(path);
}

/**
 * The INT4 block shape of a QA-BLoRA run: --tile, else the resumed run's, else the whole tile
 * λout x λin. It must lie inside the tile (checked here, naming the numbers). Null for the other
 * methods and bases, where --tile is refused.
 */
function resolveBlockShape(r: FlagReader, method: CliMethod, quant: BaseQuant, tile: BlockShape, saved: BlockShape | null | undefined): BlockShape | null {
  const text = r.string('tile');
  if (text !== undefined && method !== 'qablora') {
    throw new UsageError(`--tile is for --method qablora (INT4 blocks inside the adapter's tiles); ${method} sets its blocks with --block`);
  }
  if (text !== undefined && quant !== 'int4') throw new UsageError(`--tile applies to --quant int4, got --quant ${quant}`);
  if (method !== 'qablora' || quant !== 'int4') return null;
  if (text === undefined) return saved ?? tile;
  const shape = parseBlockShape(text, 'tile');
  checkBlocksInsideTile(`--tile ${text}`, shape, tile);
  return shape;
}

/** The base quantization a run's settings ask for (QA-BLoRA: its block shape inside its tiles). */
function baseQuantSettings(s: Pick<FinetuneSettings, 'quant' | 'block' | 'method' | 'lambdaIn' | 'lambdaOut' | 'blockShape'>): BaseQuantSettings {
  return {
    quant: s.quant,
    ...(s.block !== null ? { block: s.block } : {}),
    ...(s.method === 'qablora' ? { tile: { rows: s.lambdaOut, cols: s.lambdaIn } } : {}),
    ...(s.blockShape ? { blocks: s.blockShape } : {}),
  };
}

/** Reads and checks the flags (applying `saved` settings first when resuming). Touches no file. */
export function resolveFinetuneSettings(r: FlagReader, saved: Partial<FinetuneSettings> = {}): FinetuneSettings {
  const modelDefault = saved.model ?? existing(EMBEDDED_MODEL);
  const model = r.string('model') ?? modelDefault;
  if (!model) throw new UsageError('no --model given and the embedded model is not installed; pass --model DIR');
  checkModelDir(model);
  const data = requireFile(r.string('data') ?? saved.data ?? EMBEDDED_DATA, 'data');
  const method = r.choice('method', CLI_METHODS, saved.method ?? 'qblora');
  const rank = r.int('rank', saved.rank ?? 64, 1);
  const alpha = r.number('alpha', saved.alpha ?? 16);
  const dropout = r.number('dropout', saved.dropout ?? 0, 0, 0.999999);
  const isLora = method === 'lora' || method === 'qlora';
  if (isLora && (r.has('lambda') || r.has('lambda-in') || r.has('lambda-out'))) {
    throw new UsageError(`--method ${method} has no balancing factor; use --method qblora or qablora with --lambda`);
  }
  const lambda = r.has('lambda') ? r.int('lambda', 1, 1) : undefined;
  if (lambda !== undefined && (r.has('lambda-in') || r.has('lambda-out'))) {
    throw new UsageError('give --lambda, or --lambda-in and --lambda-out, not both');
  }
  // Saved factors only apply when resuming the same method.
  const same = saved.method === undefined || saved.method === method;
  let lambdaIn = 1;
  let lambdaOut = 1;
  if (!isLora && lambda !== undefined) {
    lambdaIn = lambda;
    lambdaOut = lambda;
  } else if (!isLora) {
    lambdaIn = r.int('lambda-in', (same ? saved.lambdaIn : undefined) ?? (method === 'qablora' ? 4 : 2), 1);
    // Q-BLoRA given only a λin uses it for both sides, as the adapter config does.
    const outFallback = method === 'qblora' && r.has('lambda-in') ? lambdaIn : (same ? saved.lambdaOut : undefined) ?? (method === 'qablora' ? 8 : 2);
    lambdaOut = r.int('lambda-out', outFallback, 1);
  }
  if (method !== 'qablora' && r.has('form')) throw new UsageError(`--form is for --method qablora; ${method} always trains the factors B·A`);
  const form = method === 'qablora' ? r.choice('form', ['matrix', 'factors'] as const, (same ? saved.form : undefined) ?? 'matrix') : 'factors';
  const quant = r.choice('quant', ['none', 'nf4', 'int4'] as const, (same ? saved.quant : undefined) ?? defaultQuantOf(method));
  if (method === 'qablora' && quant === 'nf4') {
    throw new UsageError('--method qablora needs an offset-carrying base (--quant int4 or none): NF4 blocks have no offset to absorb the update');
  }
  const block = r.has('block') ? r.int('block', 0, 1) : saved.block ?? null;
  const blockShape = resolveBlockShape(r, method, quant, { rows: lambdaOut, cols: lambdaIn }, same ? saved.blockShape : undefined);
  // Validates the quantization settings now, before anything is loaded.
  quantizeOptionsFor(baseQuantSettings({ quant, block, method, lambdaIn, lambdaOut, blockShape }));
  const evalDataFlag = r.string('eval-data') ?? saved.evalData ?? null;
  const mcDefault = data === resolve(EMBEDDED_DATA) ? existing(EMBEDDED_MC) : null;
  const mcFlag = r.string('mc') ?? (saved.mc !== undefined ? saved.mc : mcDefault);
  return {
    model: resolve(model),
    data,
    method, rank, alpha, dropout, lambdaIn, lambdaOut, form, quant, block, blockShape,
    steps: r.int('steps', saved.steps ?? DEFAULT_TRAINING_CONFIG.steps, 1),
    lr: r.number('lr', saved.lr ?? DEFAULT_TRAINING_CONFIG.lr, 0, Infinity, true),
    batch: r.int('batch', saved.batch ?? DEFAULT_TRAINING_CONFIG.batchSize, 1),
    gradAccum: r.int('grad-accum', saved.gradAccum ?? DEFAULT_TRAINING_CONFIG.gradAccum, 1),
    warmupRatio: r.number('warmup-ratio', saved.warmupRatio ?? DEFAULT_TRAINING_CONFIG.warmupRatio, 0, 1),
    maxGradNorm: r.number('max-grad-norm', saved.maxGradNorm ?? DEFAULT_TRAINING_CONFIG.maxGradNorm, 0, Infinity, true),
    seed: r.int('seed', saved.seed ?? 42, 0, 2 ** 32 - 2),
    maxSourceLen: r.int('max-source-len', saved.maxSourceLen ?? 384, 1),
    maxTargetLen: r.int('max-target-len', saved.maxTargetLen ?? 128, 1),
    device: r.choice('device', ['cpu', 'cuda'] as const, (saved.device as 'cpu' | 'cuda' | undefined) ?? 'cpu'),
    evalEvery: r.int('eval-every', saved.evalEvery ?? 0, 0),
    evalData: evalDataFlag === null ? null : requireFile(evalDataFlag, 'eval-data'),
    evalSize: r.int('eval-size', saved.evalSize ?? 64, 0),
    mc: mcFlag === null ? null : requireFile(mcFlag, 'mc'),
    mcLimit: r.int('mc-limit', saved.mcLimit ?? 100, 0),
    evalBatch: r.int('eval-batch', saved.evalBatch ?? 8, 1),
    saveEvery: r.int('save-every', saved.saveEvery ?? 1000, 0),
    keepCheckpoints: r.int('keep-checkpoints', saved.keepCheckpoints ?? 2, 0),
    nonFinite: r.choice('non-finite', ['stop', 'skip'] as const, saved.nonFinite ?? 'stop'),
    gradientCheckpointing: r.flag('gradient-checkpointing') || (saved.gradientCheckpointing ?? false),
  };
}

function isEmptyDir(dir: string): boolean {
  return readdirSync(dir).length === 0;
}

/** The examples to train on and to hold out, by the settings. */
function loadData(s: FinetuneSettings): { train: AlpacaExample[]; heldOut: AlpacaExample[] } {
  const examples = readAlpacaJsonl(s.data);
  if (s.evalData) return { train: examples, heldOut: readAlpacaJsonl(s.evalData) };
  if (s.evalSize === 0) return { train: examples, heldOut: [] };
  if (s.evalSize >= examples.length) {
    throw new UsageError(`--eval-size ${s.evalSize} leaves no training examples (${s.data} holds ${examples.length}); lower it or give --eval-data`);
  }
  return splitHeldOut(examples, s.evalSize, s.seed);
}

/** Runs `blora finetune` with the arguments after the command name. Returns the exit code. */
export async function finetuneCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const values = parseFlags(FINETUNE_SPEC, argv);
  if (!values) {
    io.stdout.write(formatHelp(FINETUNE_SPEC));
    return 0;
  }
  const r = new FlagReader(values);
  const out = resolve(r.string('out', 'blora-out'));
  const resume = r.flag('resume');
  let saved: Partial<FinetuneSettings> = {};
  if (resume) {
    if (!latestCheckpoint(join(out, 'checkpoints'))) throw new UsageError(`--resume: no checkpoint under ${join(out, 'checkpoints')}`);
    saved = (readRunSettings(out) ?? {}) as Partial<FinetuneSettings>;
  } else if (existsSync(out) && (!statSync(out).isDirectory() || !isEmptyDir(out))) {
    throw new UsageError(`--out ${out} already exists and is not empty; choose a new directory, or add --resume to continue its run`);
  }
  const s = resolveFinetuneSettings(r, saved);
  await prepareDevice(s.device);

  // Everything is read and built before --out is touched, so a bad file leaves nothing behind.
  const { train, heldOut } = loadData(s);
  let questions: MultipleChoiceQuestion[] = s.mc ? readMultipleChoiceJsonl(s.mc) : [];
  if (s.mcLimit > 0) questions = questions.slice(0, s.mcLimit);
  const quantOptions = quantizeOptionsFor(baseQuantSettings(s));
  const { model, tokenizer } = loadBaseModel(s.model, quantOptions, s.device);
  const initGenerator = new Generator(s.seed);
  const dropoutGenerator = new Generator(s.seed + 1);
  const attached = attachAdapters(model, {
    method: adapterMethodOf(s.method), r: s.rank, alpha: s.alpha, dropout: s.dropout,
    ...(s.method === 'lora' || s.method === 'qlora' ? {} : { lambdaIn: s.lambdaIn, lambdaOut: s.lambdaOut }),
    ...(s.method === 'qablora' ? { form: s.form } : {}),
  }, { generator: initGenerator, dropoutGenerator });
  model.gradientCheckpointing = s.gradientCheckpointing;
  const limits = { maxSourceLength: s.maxSourceLen, maxTargetLength: s.maxTargetLen };
  const data = new InstructionDataset(train, tokenizer, { limits, seed: s.seed, device: s.device });
  const evalData = heldOut.length ? new InstructionDataset(heldOut, tokenizer, { limits, device: s.device }) : undefined;
  const summary = summarizeParameters(model);

  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, 'run.json'), jsonText(s));
  const saveOptions = { baseModelNameOrPath: s.model };
  const trainer = new Trainer(model, data, {
    steps: s.steps, lr: s.lr, batchSize: s.batch, gradAccum: s.gradAccum, warmupRatio: s.warmupRatio, maxGradNorm: s.maxGradNorm,
    nonFinite: s.nonFinite, evalEvery: s.evalEvery, evalBatchSize: s.evalBatch, checkpointEvery: s.saveEvery, keepCheckpoints: s.keepCheckpoints,
    outDir: out,
    ...(evalData ? { evalData } : {}),
    ...(questions.length ? { evalQuestions: questions } : {}),
    weights: adapterWeightsIO(attached, (dir) => saveAdapter(dir, attached, saveOptions)),
    generators: { 'adapter-dropout': dropoutGenerator },
    ...(r.flag('quiet') ? {} : { progress: io.stderr }),
  });
  const note = (text: string) => {
    if (!r.flag('quiet')) io.stderr.write(`${text}\n`);
  };
  note(`model ${s.model} (${s.quant === 'none' ? 'dense' : s.quant} base), ${train.length} training examples` +
    `${heldOut.length ? `, ${heldOut.length} held out` : ''}${questions.length ? `, ${questions.length} questions` : ''}`);
  note(`trainable params: ${summary.trainable} || all params: ${summary.total} || trainable%: ${summary.trainablePercent.toFixed(4)}`);
  if (resume) note(`resuming at step ${trainer.resume()} of ${s.steps}`);
  const result = trainer.run();
  saveAdapter(out, attached, saveOptions);
  const lastEval = result.evals[result.evals.length - 1];
  const report = {
    method: s.method,
    adapter: { r: s.rank, alpha: s.alpha, lambdaIn: s.lambdaIn, lambdaOut: s.lambdaOut, form: s.form, dropout: s.dropout },
    base: { model: s.model, quant: s.quant, block: s.block, blockShape: s.blockShape },
    data: { file: s.data, trainExamples: train.length, heldOutExamples: heldOut.length, questions: questions.length },
    parameters: { trainable: summary.trainable, total: summary.total, trainablePercent: summary.trainablePercent },
    training: { steps: result.steps, batch: s.batch, gradAccum: s.gradAccum, lr: s.lr, warmupRatio: s.warmupRatio, maxGradNorm: s.maxGradNorm },
    result: {
      firstLoss: result.firstLoss, finalLoss: result.finalLoss, skippedSteps: result.skippedSteps,
      secondsThisRun: result.seconds, tokensPerSecond: result.seconds > 0 ? result.inputTokens / result.seconds : null,
    },
    evals: result.evals,
    layers: formatParameterSummary(summary).split('\n'),
  };
  writeFileAtomic(join(out, 'summary.json'), jsonText(report));
  note(`final loss ${result.finalLoss.toFixed(4)} (first ${result.firstLoss.toFixed(4)})` +
    (lastEval?.mcAccuracy !== undefined ? `, MC accuracy ${(100 * lastEval.mcAccuracy).toFixed(1)}%` : ''));
  io.stdout.write(`${out}\n`);
  return 0;
}

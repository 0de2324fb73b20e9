// `blora eval`: multiple-choice accuracy (raw and length-normalised), held-out loss on Alpaca
// JSONL and perplexity on a text file, for a base model alone or with an adapter.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readAlpacaJsonl } from '../data/alpaca.js';
import { InstructionDataset } from '../data/dataset.js';
import { evaluateMultipleChoice, readMultipleChoiceJsonl } from '../eval/multiple-choice.js';
import { heldOutLoss, textPerplexity } from '../eval/perplexity.js';
import { loadAdapter, readAdapterConfig } from '../peft.js';
import { storedFormats } from '../checkpoint/bases.js';
import { jsonText, writeFileAtomic } from '../train/files.js';
import { FlagReader, formatHelp, parseFlags, type CommandSpec } from './args.js';
import { EMBEDDED_MC, EMBEDDED_MODEL, existing } from './assets.js';
import { UsageError } from './errors.js';
import type { CliIO } from './io.js';
import { adapterBlockSettings, checkModelDir, loadBaseModel, prepareDevice, quantizeOptionsFor, readRunSettings, type BaseQuant } from './model-io.js';
import { BASE_MODEL_FLAG, ADAPTER_FLAG, BASE_QUANT_FLAG, BLOCK_FLAG } from './adapter-flags.js';

/** The flags of `blora eval`. */
export const EVAL_SPEC: CommandSpec = {
  name: 'eval',
  usage: 'blora eval [--model DIR] [--adapter DIR] [--mc FILE] [--data FILE] [--text FILE] [options]',
  summary: 'Evaluate a base model, alone or with an adapter: multiple-choice accuracy, held-out loss, text perplexity.',
  flags: [
    BASE_MODEL_FLAG,
    ADAPTER_FLAG,
    { name: 'mc', type: 'string', value: 'FILE', help: 'multiple-choice questions, JSONL (instruction, input, choices, answer)', defaultText: 'the embedded test when nothing else is asked, or with --mc-limit' },
    { name: 'mc-limit', type: 'string', value: 'N', help: 'score only the first N questions (0: all)', defaultText: '0' },
    { name: 'data', type: 'string', value: 'FILE', help: 'Alpaca JSONL: mean loss and perplexity of the responses' },
    { name: 'text', type: 'string', value: 'FILE', help: 'plain text: perplexity' },
    { name: 'max-tokens', type: 'string', value: 'N', help: 'score at most N tokens of --text (0: all)', defaultText: '0' },
    { name: 'window', type: 'string', value: 'N', help: 'tokens per window for --text', defaultText: '256' },
    BASE_QUANT_FLAG,
    BLOCK_FLAG,
    { name: 'batch', type: 'string', value: 'N', help: 'sequences per forward pass', defaultText: '8' },
    { name: 'device', type: 'string', value: 'D', help: 'cpu or cuda', defaultText: 'cpu' },
    { name: 'json', type: 'boolean', help: 'print the results as JSON' },
    { name: 'out', type: 'string', value: 'FILE', help: 'also write the results (with per-question details) to a JSON file' },
  ],
};

function requireFile(path: string, flag: string): string {
  if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`--${flag} ${path}: no such file`);
  return resolve(path);
}

function percent(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

/** Runs `blora eval`. Returns the exit code. */
export async function evalCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const values = parseFlags(EVAL_SPEC, argv);
  if (!values) {
    io.stdout.write(formatHelp(EVAL_SPEC));
    return 0;
  }
  const r = new FlagReader(values);
  const adapterDir = r.string('adapter');
  if (adapterDir !== undefined) {
    if (!existsSync(join(adapterDir, 'adapter_config.json'))) throw new UsageError(`--adapter ${adapterDir}: no adapter_config.json there`);
  }
  const run = adapterDir ? readRunSettings(adapterDir) : null;
  const adapterConfig = adapterDir ? readAdapterConfig(adapterDir) : null;
  const model = r.string('model') ?? (typeof run?.model === 'string' && existsSync(run.model) ? run.model : null) ?? existing(EMBEDDED_MODEL);
  if (!model) throw new UsageError('no --model given and the embedded model is not installed; pass --model DIR');
  checkModelDir(model);
  const quant = r.choice('quant', ['none', 'nf4', 'int4'] as const, (run?.quant as BaseQuant | undefined) ?? 'none');
  const block = r.has('block') ? r.int('block', 0, 1) : typeof run?.block === 'number' ? run.block : undefined;
  const quantOptions = quantizeOptionsFor({ quant, ...(block !== undefined ? { block } : {}), ...adapterBlockSettings(run, adapterConfig) });
  const batchSize = r.int('batch', 8, 1);
  const device = r.choice('device', ['cpu', 'cuda'] as const, 'cpu');
  const dataFile = r.has('data') ? requireFile(r.string('data')!, 'data') : null;
  const textFile = r.has('text') ? requireFile(r.string('text')!, 'text') : null;
  const mcGiven = r.has('mc') ? requireFile(r.string('mc')!, 'mc') : null;
  const mcFile = mcGiven ?? (dataFile || textFile ? (r.has('mc-limit') ? existing(EMBEDDED_MC) : null) : existing(EMBEDDED_MC));
  if (!mcFile && !dataFile && !textFile) throw new UsageError('nothing to evaluate: give --mc, --data or --text');
  const mcLimit = r.int('mc-limit', 0, 0);
  const maxTokens = r.int('max-tokens', 0, 0);
  const windowLength = r.int('window', 256, 1);
  const outFile = r.string('out');
  await prepareDevice(device);

  const questions = mcFile ? readMultipleChoiceJsonl(mcFile) : [];
  const examples = dataFile ? readAlpacaJsonl(dataFile) : [];
  const text = textFile ? readFileSync(textFile, 'utf8') : '';
  const loaded = loadBaseModel(model, quantOptions, device);
  // `quant` is what loading did to dense weights; `base` is the format of the weights actually
  // evaluated, which also covers checkpoints stored quantized (quant 'none', base 'nf4').
  // Read before the adapter wraps the layers.
  const base = storedFormats(loaded.model);
  if (adapterDir) loadAdapter(adapterDir, loaded.model, { trainable: false });
  const results: Record<string, unknown> = { model: resolve(model), adapter: adapterDir ? resolve(adapterDir) : null, quant, base };
  const lines: string[] = [`model ${resolve(model)}${adapterDir ? ` + adapter ${resolve(adapterDir)}` : ''} (${base} base)`];
  if (mcFile) {
    const mc = evaluateMultipleChoice(loaded.model, loaded.tokenizer, mcLimit ? questions.slice(0, mcLimit) : questions, { batchSize, device });
    results.multipleChoice = { file: mcFile, accuracy: mc.accuracy, accuracyNorm: mc.accuracyNorm, questions: mc.count };
    if (outFile) results.questions = mc.questions;
    lines.push(`multiple choice (${mc.count} questions): acc ${percent(mc.accuracy)}, acc_norm ${percent(mc.accuracyNorm)}`);
  }
  if (dataFile) {
    const data = new InstructionDataset(examples, loaded.tokenizer, { device });
    const loss = heldOutLoss(loaded.model, data, batchSize);
    results.heldOut = { file: dataFile, examples: examples.length, ...loss };
    lines.push(`held-out loss (${examples.length} examples, ${loss.tokens} response tokens): ${loss.loss.toFixed(4)}, perplexity ${loss.perplexity.toFixed(3)}`);
  }
  if (textFile) {
    const ppl = textPerplexity(loaded.model, loaded.tokenizer, text, {
      windowLength, batchSize, device, ...(maxTokens ? { maxTokens } : {}),
    });
    results.text = { file: textFile, windowLength, ...ppl };
    lines.push(`text perplexity (${ppl.tokens} tokens): ${ppl.perplexity.toFixed(3)} (loss ${ppl.loss.toFixed(4)})`);
  }
  if (outFile) writeFileAtomic(resolve(outFile), jsonText(results));
  io.stdout.write(r.flag('json') ? jsonText({ ...results, questions: undefined }) : `${lines.join('\n')}\n`);
  return 0;
}

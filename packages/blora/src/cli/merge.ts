// `blora merge`: fold a trained adapter into its base model and save the merged checkpoint.
// QA-BLoRA on INT4 merges exactly into the block offsets and is saved as a 4-bit checkpoint
// (no post-training quantization); other adapters merge into dense weights, or are quantized
// again with --requantize (lossy, with its error report). The merged checkpoint is loaded back
// and compared with the adapter model on held-out sequences.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { QuantErrorStats, QuantizeOptions } from '@blora/quant';
import { loadLlama, saveLlama, type LlamaConfig, type LlamaForCausalLM } from '@blora/models';
import { quantizedBaseFactory, storedFormats, widenIntScales } from '../checkpoint/bases.js';
import { compareLogits, sequenceLogits, type OutputDifference } from '../checkpoint/output-check.js';
import { copyTokenizerFiles } from '../checkpoint/tokenizer-files.js';
import { readAlpacaJsonl, type AlpacaExample } from '../data/alpaca.js';
import { splitHeldOut } from '../data/split.js';
import { formatAlpacaPrompt } from '../data/template.js';
import { mergeAdapters, type LayerMergeReport, type MergeMode } from '../merge.js';
import { loadAdapter, readAdapterConfig } from '../peft.js';
import { jsonText, writeFileAtomic } from '../train/files.js';
import { FlagReader, formatHelp, parseFlags, type CommandSpec } from './args.js';
import { EMBEDDED_MODEL, existing } from './assets.js';
import { UsageError } from './errors.js';
import type { CliIO } from './io.js';
import { adapterBlockSettings, baseLinearFactory, checkModelDir, loadBaseModel, prepareDevice, quantizeOptionsFor, readRunSettings, type BaseQuant } from './model-io.js';
import { assertFreshOutput, writeDirectoryAtomically } from './output-dir.js';
import { BASE_MODEL_FLAG, ADAPTER_FLAG, BASE_QUANT_FLAG, BLOCK_FLAG } from './adapter-flags.js';

/** File name of the merge report written into the merged checkpoint directory. */
export const MERGE_REPORT = 'merge-report.json';

/** Most tokens of one held-out sequence used by the output check. */
const CHECK_TOKENS = 96;

/** The flags of `blora merge`. */
export const MERGE_SPEC: CommandSpec = {
  name: 'merge',
  usage: 'blora merge --adapter DIR --out DIR [--model DIR] [--mode exact|dense|requantize] [--requantize nf4|int4]',
  summary: 'Merge an adapter into its base model and save the result as a Hugging Face checkpoint directory.',
  flags: [
    ADAPTER_FLAG,
    { name: 'out', type: 'string', value: 'DIR', help: 'where the merged checkpoint goes (must be new or empty)' },
    BASE_MODEL_FLAG,
    BASE_QUANT_FLAG,
    BLOCK_FLAG,
    { name: 'mode', type: 'string', value: 'M', help: 'exact (into dense weights or INT4 offsets), dense (dequantize + add) or requantize', defaultText: 'exact; dense for an NF4 base; requantize with --requantize' },
    { name: 'requantize', type: 'string', value: 'Q', help: 'quantize the merged weights again to nf4 or int4 (lossy; the error of each layer is reported)' },
    { name: 'requantize-block', type: 'string', value: 'N', help: 'NF4 blocksize or INT4 group size for --requantize', defaultText: '64 for nf4, 32 for int4' },
    { name: 'offsets', type: 'string', value: 'T', help: 'exact INT4 merges: store scales and offsets as float32 (exact) or float16 (smaller, offsets rounded)', defaultText: 'float32' },
    { name: 'dtype', type: 'string', value: 'T', help: 'dtype of the dense tensors saved: float32, bfloat16 or float16', defaultText: 'float32' },
    { name: 'check', type: 'string', value: 'N', help: 'held-out sequences on which the saved model is compared with the adapter model (0: skip)', defaultText: '4' },
  ],
  notes: 'QA-BLoRA on INT4 is merged into the block offsets (codes and scales unchanged) and written as a 4-bit checkpoint. ' +
    'LoRA, QLoRA and Q-BLoRA are written with dense weights, or 4-bit with --requantize. ' +
    `The output also holds ${MERGE_REPORT}: what each layer became and how far the saved model's logits are from the adapter model's.`,
};

/** What `blora merge` reports (also written as merge-report.json). */
export interface MergeSummary {
  model: string;
  adapter: string;
  method: string;
  mode: MergeMode;
  /** Storage of the merged projections: 'dense', or the quantization_config method and format. */
  stored: string;
  layers: LayerMergeReport[];
  /** The saved model against the adapter model, or null when skipped. */
  check: (OutputDifference & { source: string }) | null;
}

/** Up to `count` token sequences for the output check: the adapter's held-out examples when its run.json names them, else seeded random ids. */
function checkSequences(run: Record<string, unknown> | null, encode: (text: string) => number[], config: LlamaConfig, count: number):
  { sequences: number[][]; source: string } {
  if (count === 0) return { sequences: [], source: 'none' };
  let examples: AlpacaExample[] = [];
  let source = '';
  const file = (key: string): string | null => (typeof run?.[key] === 'string' && existsSync(run[key] as string) ? (run[key] as string) : null);
  const evalData = file('evalData');
  const data = file('data');
  if (evalData) {
    examples = readAlpacaJsonl(evalData);
    source = `held-out examples of ${evalData}`;
  } else if (data && typeof run?.evalSize === 'number' && run.evalSize > 0 && typeof run.seed === 'number') {
    const all = readAlpacaJsonl(data);
    if (run.evalSize < all.length) examples = splitHeldOut(all, run.evalSize, run.seed).heldOut;
    source = `held-out examples of ${data}`;
  }
  const bos = config.bosTokenId !== null ? [config.bosTokenId] : [];
  const sequences = examples.slice(0, count)
    .map((e) => [...bos, ...encode(formatAlpacaPrompt(e) + e.output)].slice(0, CHECK_TOKENS))
    .filter((ids) => ids.length > 0);
  if (sequences.length > 0) return { sequences, source };
  // No data to hand: a fixed pseudo-random draw (the same on every run).
  let state = 12345;
  const next = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const random = Array.from({ length: count }, () => Array.from({ length: 32 }, () => next() % config.vocabSize));
  return { sequences: random, source: 'seeded random token ids' };
}

function errorLine(e: QuantErrorStats): string {
  return `re-quantization rmse ${e.rmse.toExponential(3)}, max abs err ${e.maxAbsError.toExponential(3)}, SQNR ${e.sqnrDb.toFixed(2)} dB`;
}

/** Runs `blora merge`. Returns the exit code. */
export async function mergeCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const values = parseFlags(MERGE_SPEC, argv);
  if (!values) {
    io.stdout.write(formatHelp(MERGE_SPEC));
    return 0;
  }
  const r = new FlagReader(values);
  const adapterDir = r.string('adapter');
  if (!adapterDir) throw new UsageError('--adapter DIR is required');
  if (!existsSync(join(adapterDir, 'adapter_config.json'))) throw new UsageError(`--adapter ${adapterDir}: no adapter_config.json there`);
  const out = r.string('out');
  if (!out) throw new UsageError('--out DIR is required');
  assertFreshOutput(resolve(out));
  const run = readRunSettings(adapterDir);
  const config = readAdapterConfig(adapterDir);
  const model = r.string('model') ?? (typeof run?.model === 'string' && existsSync(run.model) ? run.model : null) ?? existing(EMBEDDED_MODEL);
  if (!model) throw new UsageError('no --model given and the embedded model is not installed; pass --model DIR');
  checkModelDir(model);
  const quant = r.choice('quant', ['none', 'nf4', 'int4'] as const, (run?.quant as BaseQuant | undefined) ?? 'none');
  const block = r.has('block') ? r.int('block', 0, 1) : typeof run?.block === 'number' ? run.block : undefined;
  const quantOptions = quantizeOptionsFor({ quant, ...(block !== undefined ? { block } : {}), ...adapterBlockSettings(run, config) });
  const requant = r.choice('requantize', ['nf4', 'int4'] as const);
  const mode = r.choice<MergeMode>('mode', ['exact', 'dense', 'requantize'], requant ? 'requantize' : quant === 'nf4' ? 'dense' : 'exact');
  if (requant && mode !== 'requantize') throw new UsageError(`--requantize ${requant} contradicts --mode ${mode}`);
  if (mode === 'exact' && quant === 'nf4') {
    throw new UsageError('an exact merge into NF4 is impossible (NF4 blocks have no offset); use --mode dense or --requantize nf4|int4');
  }
  if (r.has('requantize-block') && !requant) throw new UsageError('--requantize-block applies to --requantize');
  const requantBlock = r.has('requantize-block') ? { block: r.int('requantize-block', 0, 1) } : {};
  const requantOptions: QuantizeOptions | null = requant ? quantizeOptionsFor({ quant: requant, ...requantBlock }) : null;
  const offsets = r.choice('offsets', ['float32', 'float16'] as const, 'float32');
  const dtype = r.choice('dtype', ['float32', 'bfloat16', 'float16'] as const, 'float32');
  const checkCount = r.int('check', 4, 0, 64);
  await prepareDevice('cpu');

  const loaded = loadBaseModel(model, quantOptions, 'cpu');
  let merged: LlamaForCausalLM | null = loaded.model;
  try {
    if (mode === 'exact' && offsets === 'float32') widenIntScales(loaded.model);
    const attached = loadAdapter(adapterDir, loaded.model);
    const probe = checkSequences(run, (text) => loaded.tokenizer.encode(text), loaded.model.config, checkCount);
    const before = sequenceLogits(loaded.model, probe.sequences);
    const layers = mergeAdapters(attached, { mode, ...(requantOptions ? { quantize: requantOptions } : {}) });
    const summary: MergeSummary = {
      model: resolve(model), adapter: resolve(adapterDir), method: config.method ?? 'lora', mode,
      stored: mode === 'dense' ? 'dense' : storedFormats(loaded.model), layers, check: null,
    };
    writeDirectoryAtomically(out, (tmp) => {
      saveLlama(loaded.model, tmp, { dtype, quantized: mode !== 'dense' });
      copyTokenizerFiles(model, tmp);
      merged!.dispose();
      merged = null;
      if (probe.sequences.length > 0) {
        // Compare what was written, read back as any later command reads it.
        const saved = loadLlama(tmp, { linearFactory: baseLinearFactory(null), quantizedLinearFactory: quantizedBaseFactory });
        try {
          summary.check = { source: probe.source, ...compareLogits(before, sequenceLogits(saved, probe.sequences), saved.config.vocabSize) };
        } finally {
          saved.dispose();
        }
      }
      writeFileAtomic(join(tmp, MERGE_REPORT), jsonText(summary));
    });
    for (const rep of layers) {
      const extra = (rep.requantizationError ? `, ${errorLine(rep.requantizationError)}` : '') +
        (rep.offsetDType ? `, offsets stored as ${rep.offsetDType}` : '');
      io.stderr.write(`${rep.name}: ${rep.method} ${rep.mode} -> ${rep.result} (update rms ${rep.deltaRms.toExponential(3)}${extra})\n`);
    }
    io.stderr.write(`saved ${summary.stored === 'dense' ? `dense ${dtype}` : summary.stored} projections\n`);
    const c = summary.check;
    if (c) {
      io.stderr.write(`saved model vs adapter model on ${c.sequences} sequences (${c.positions} positions, ${c.source}): ` +
        `max |Δlogit| ${c.maxAbsDiff.toExponential(3)} (${c.relative.toExponential(3)} of max |logit| ${c.maxAbsLogit.toFixed(3)}), ` +
        `${c.argmaxChanges} argmax changes\n`);
    }
    io.stdout.write(`${resolve(out)}\n`);
  } finally {
    (merged as LlamaForCausalLM | null)?.dispose();
  }
  return 0;
}

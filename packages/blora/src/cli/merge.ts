// `blora merge`: fold a trained adapter into its base model and save the merged checkpoint.
import { copyFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { saveLlama } from '@blora/models';
import { mergeAdapters, type MergeMode } from '../merge.js';
import { loadAdapter, readAdapterConfig } from '../peft.js';
import { FlagReader, formatHelp, parseFlags, type CommandSpec } from './args.js';
import { EMBEDDED_MODEL, existing } from './assets.js';
import { UsageError } from './errors.js';
import type { CliIO } from './io.js';
import { checkModelDir, loadBaseModel, prepareDevice, quantizeOptionsFor, readRunSettings, type BaseQuant } from './model-io.js';
import { assertFreshOutput, writeDirectoryAtomically } from './output-dir.js';

/** The flags of `blora merge`. */
export const MERGE_SPEC: CommandSpec = {
  name: 'merge',
  usage: 'blora merge --adapter DIR --out DIR [--model DIR] [--mode exact|dense|requantize]',
  summary: 'Merge an adapter into its base model and save the result as a Hugging Face checkpoint directory.',
  flags: [
    { name: 'adapter', type: 'string', value: 'DIR', help: 'adapter directory (PEFT layout)' },
    { name: 'out', type: 'string', value: 'DIR', help: 'where the merged checkpoint goes (must be new or empty)' },
    { name: 'model', type: 'string', value: 'DIR', help: 'base checkpoint directory', defaultText: "the adapter's base model, else the embedded tiny model" },
    { name: 'quant', type: 'string', value: 'Q', help: 'base format the adapter was trained on: none, nf4 or int4', defaultText: "from the adapter's run.json, else none" },
    { name: 'block', type: 'string', value: 'N', help: 'quantization block (see blora finetune --help)' },
    { name: 'mode', type: 'string', value: 'M', help: 'exact (into dense weights or INT4 offsets), dense (dequantize + add) or requantize', defaultText: 'exact, or dense for an NF4 base' },
    { name: 'dtype', type: 'string', value: 'T', help: 'dtype of the saved weights: float32, bfloat16 or float16', defaultText: 'float32' },
  ],
  notes: 'The merged checkpoint is written with dense weights (4-bit layers dequantized), which any Llama loader reads.',
};

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
  const tile = config.method === 'qablora' ? { tile: { rows: config.lambdaOut ?? 8, cols: config.lambdaIn ?? 4 } } : {};
  const quantOptions = quantizeOptionsFor({ quant, ...(block !== undefined ? { block } : {}), ...tile });
  const mode = r.choice<MergeMode>('mode', ['exact', 'dense', 'requantize'], quant === 'nf4' ? 'dense' : 'exact');
  if (mode === 'exact' && quant === 'nf4') {
    throw new UsageError('an exact merge into NF4 is impossible (NF4 blocks have no offset); use --mode dense or --mode requantize');
  }
  const dtype = r.choice('dtype', ['float32', 'bfloat16', 'float16'] as const, 'float32');
  await prepareDevice('cpu');

  const loaded = loadBaseModel(model, quantOptions, 'cpu');
  const attached = loadAdapter(adapterDir, loaded.model);
  const reports = mergeAdapters(attached, { mode });
  writeDirectoryAtomically(out, (tmp) => {
    saveLlama(loaded.model, tmp, { dtype });
    for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      if (existsSync(join(model, file))) copyFileSync(join(model, file), join(tmp, file));
    }
  });
  for (const rep of reports) {
    const extra = (rep.requantizationError ? `, re-quantization rmse ${rep.requantizationError.rmse.toExponential(3)}` : '') +
      (rep.offsetDType ? `, offsets stored as ${rep.offsetDType}` : '');
    io.stderr.write(`${rep.name}: ${rep.method} ${rep.mode} -> ${rep.result} (update rms ${rep.deltaRms.toExponential(3)}${extra})\n`);
  }
  io.stdout.write(`${resolve(out)}\n`);
  return 0;
}

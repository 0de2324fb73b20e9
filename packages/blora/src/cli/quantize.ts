// `blora quantize`: quantize a checkpoint's block projections as fine-tuning would and report
// the error of every layer. Writing a 4-bit checkpoint is not offered yet.
import { noGrad } from '@blora/autograd';
import { quantizationError, quantizeLinear, type QuantErrorStats } from '@blora/quant';
import { loadLlama } from '@blora/models';
import { resolve } from 'node:path';
import { QuantizedBase } from '../layers/quantized-base.js';
import { jsonText, writeFileAtomic } from '../train/files.js';
import { FlagReader, formatHelp, parseFlags, type CommandSpec } from './args.js';
import { EMBEDDED_MODEL, existing } from './assets.js';
import { NotAvailableError, UsageError } from './errors.js';
import type { CliIO } from './io.js';
import { checkModelDir, quantizeOptionsFor } from './model-io.js';

/** The flags of `blora quantize`. */
export const QUANTIZE_SPEC: CommandSpec = {
  name: 'quantize',
  usage: 'blora quantize [--model DIR] [--quant nf4|int4] [--block N] [--report FILE.json]',
  summary: "Quantize a model's block projections (NF4 or INT4) and report the quantization error of each layer.",
  flags: [
    { name: 'model', type: 'string', value: 'DIR', help: 'Hugging Face checkpoint directory', defaultText: 'the embedded tiny model' },
    { name: 'quant', type: 'string', value: 'Q', help: 'nf4 or int4', defaultText: 'nf4' },
    { name: 'block', type: 'string', value: 'N', help: 'NF4 blocksize or INT4 group size', defaultText: '64 for nf4, 32 for int4' },
    { name: 'tile', type: 'string', value: 'RxC', help: 'INT4 2-D blocks of R rows x C columns (QA-BLoRA: lambda-out x lambda-in)' },
    { name: 'report', type: 'string', value: 'FILE', help: 'write the per-layer report as JSON' },
    { name: 'out', type: 'string', value: 'DIR', help: 'write a 4-bit checkpoint (not available yet)' },
  ],
};

/** Runs `blora quantize`. Returns the exit code. */
export async function quantizeCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const values = parseFlags(QUANTIZE_SPEC, argv);
  if (!values) {
    io.stdout.write(formatHelp(QUANTIZE_SPEC));
    return 0;
  }
  const r = new FlagReader(values);
  if (r.has('out')) {
    throw new NotAvailableError('writing a 4-bit checkpoint is not available yet: blora quantizes while loading ' +
      '(blora finetune --quant, blora eval --quant); run without --out for the error report');
  }
  const model = r.string('model') ?? existing(EMBEDDED_MODEL);
  if (!model) throw new UsageError('no --model given and the embedded model is not installed; pass --model DIR');
  checkModelDir(model);
  const quant = r.choice('quant', ['nf4', 'int4'] as const, 'nf4');
  const block = r.has('block') ? r.int('block', 0, 1) : undefined;
  const tileText = r.string('tile');
  let tile: { rows: number; cols: number } | undefined;
  if (tileText !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(tileText);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new UsageError(`--tile must look like 8x4 (rows x columns), got '${tileText}'`);
    if (quant !== 'int4') throw new UsageError('--tile applies to --quant int4');
    tile = { rows: Number(m[1]), cols: Number(m[2]) };
  }
  const options = quantizeOptionsFor({ quant, ...(block !== undefined ? { block } : {}), ...(tile ? { tile } : {}) })!;
  const rows: { layer: string; description: string; bitsPerParameter: number; stats: QuantErrorStats }[] = [];
  const loaded = loadLlama(model, {
    linearFactory: (name, weight) => {
      try {
        const q = noGrad(() => quantizeLinear(weight, options));
        rows.push({ layer: name, description: q.describe(), bitsPerParameter: q.bitsPerParameter, stats: quantizationError(weight, q) });
        return new QuantizedBase(q);
      } finally {
        weight.dispose();
      }
    },
  });
  const width = Math.max(5, ...rows.map((x) => x.layer.length));
  io.stdout.write(`${'layer'.padEnd(width)}  ${'bits/param'.padStart(10)}  ${'rmse'.padStart(10)}  ${'max abs err'.padStart(11)}  ${'SQNR dB'.padStart(8)}\n`);
  let weighted = 0;
  let count = 0;
  for (const x of rows) {
    io.stdout.write(`${x.layer.padEnd(width)}  ${x.bitsPerParameter.toFixed(3).padStart(10)}  ${x.stats.rmse.toExponential(3).padStart(10)}  ` +
      `${x.stats.maxAbsError.toExponential(3).padStart(11)}  ${x.stats.sqnrDb.toFixed(2).padStart(8)}\n`);
    weighted += x.stats.rmse ** 2 * x.stats.count;
    count += x.stats.count;
  }
  io.stdout.write(`${rows.length} layers, ${options.format}${'blocksize' in options ? ` blocksize ${options.blocksize}` : ''}: ` +
    `overall rmse ${Math.sqrt(weighted / Math.max(1, count)).toExponential(3)}\n`);
  const reportPath = r.string('report');
  if (reportPath) writeFileAtomic(resolve(reportPath), jsonText({ model: resolve(model), options, layers: rows }));
  loaded.dispose();
  return 0;
}

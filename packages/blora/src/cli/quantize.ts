// `blora quantize`: quantize a checkpoint's block projections as fine-tuning would, report the
// error of every layer, and (with --out) write the 4-bit checkpoint: NF4 in bitsandbytes'
// layout, INT4 blocks in this project's layout.
import { noGrad } from '@blora/autograd';
import { quantizationError, quantizeLinear, type QuantErrorStats, type QuantizeOptions } from '@blora/quant';
import { loadLlama, readCheckpointConfig, saveLlama } from '@blora/models';
import { join, resolve } from 'node:path';
import { copyTokenizerFiles } from '../checkpoint/tokenizer-files.js';
import { QuantizedBase } from '../layers/quantized-base.js';
import { jsonText, writeFileAtomic } from '../train/files.js';
import { FlagReader, formatHelp, parseFlags, type CommandSpec } from './args.js';
import { EMBEDDED_MODEL, existing } from './assets.js';
import { UsageError } from './errors.js';
import type { CliIO } from './io.js';
import { checkModelDir, parseBlockShape, quantizeOptionsFor, type BlockShape } from './model-io.js';
import { assertFreshOutput, writeDirectoryAtomically } from './output-dir.js';

/** File name of the per-layer report written into a quantized checkpoint directory. */
export const QUANTIZATION_REPORT = 'quantization-report.json';

/** The flags of `blora quantize`. */
export const QUANTIZE_SPEC: CommandSpec = {
  name: 'quantize',
  usage: 'blora quantize [--model DIR] [--quant nf4|int4] [--block N | --tile RxC] [--out DIR] [--report FILE.json]',
  summary: "Quantize a model's block projections (NF4 or INT4), report the error of each layer, and write the 4-bit checkpoint.",
  flags: [
    { name: 'model', type: 'string', value: 'DIR', help: 'Hugging Face checkpoint directory', defaultText: 'the embedded tiny model' },
    { name: 'quant', type: 'string', value: 'Q', help: 'nf4 or int4', defaultText: 'nf4' },
    { name: 'block', type: 'string', value: 'N', help: 'NF4 blocksize or INT4 group size', defaultText: '64 for nf4, 32 for int4' },
    { name: 'tile', type: 'string', value: 'RxC', help: 'INT4 2-D blocks of R rows x C columns (QA-BLoRA: lambda-out x lambda-in)' },
    { name: 'out', type: 'string', value: 'DIR', help: 'write the 4-bit checkpoint there (must be new or empty), with the tokenizer and the report' },
    { name: 'dtype', type: 'string', value: 'T', help: 'dtype of the dense tensors (embeddings, norms) in --out: float32, bfloat16 or float16', defaultText: 'float32' },
    { name: 'report', type: 'string', value: 'FILE', help: 'also write the per-layer report as JSON to FILE' },
  ],
  notes: 'NF4 checkpoints use the tensor names and quantization_config of transformers + bitsandbytes (double quantization on); ' +
    'INT4 checkpoints store codes, scales and offsets with a quantization_config of quant_method "blora-int". ' +
    'Both load back into blora bit for bit.',
};

/** One layer of the report. */
interface LayerRow {
  layer: string;
  description: string;
  bitsPerParameter: number;
  stats: QuantErrorStats;
}

function readTile(r: FlagReader, quant: 'nf4' | 'int4'): BlockShape | undefined {
  const text = r.string('tile');
  if (text === undefined) return undefined;
  const shape = parseBlockShape(text, 'tile');
  if (quant !== 'int4') throw new UsageError('--tile applies to --quant int4');
  return shape;
}

/** The error table: one line per layer, then the overall RMSE. */
export function formatErrorTable(rows: readonly LayerRow[], options: QuantizeOptions): string {
  const width = Math.max(5, ...rows.map((x) => x.layer.length));
  const lines = [`${'layer'.padEnd(width)}  ${'bits/param'.padStart(10)}  ${'rmse'.padStart(10)}  ${'max abs err'.padStart(11)}  ${'SQNR dB'.padStart(8)}`];
  let weighted = 0;
  let count = 0;
  for (const x of rows) {
    lines.push(`${x.layer.padEnd(width)}  ${x.bitsPerParameter.toFixed(3).padStart(10)}  ${x.stats.rmse.toExponential(3).padStart(10)}  ` +
      `${x.stats.maxAbsError.toExponential(3).padStart(11)}  ${x.stats.sqnrDb.toFixed(2).padStart(8)}`);
    weighted += x.stats.rmse ** 2 * x.stats.count;
    count += x.stats.count;
  }
  lines.push(`${rows.length} layers, ${options.format}${'blocksize' in options ? ` blocksize ${options.blocksize}` : ''}: ` +
    `overall rmse ${Math.sqrt(weighted / Math.max(1, count)).toExponential(3)}`);
  return `${lines.join('\n')}\n`;
}

/** Runs `blora quantize`. Returns the exit code. */
export async function quantizeCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const values = parseFlags(QUANTIZE_SPEC, argv);
  if (!values) {
    io.stdout.write(formatHelp(QUANTIZE_SPEC));
    return 0;
  }
  const r = new FlagReader(values);
  const model = r.string('model') ?? existing(EMBEDDED_MODEL);
  if (!model) throw new UsageError('no --model given and the embedded model is not installed; pass --model DIR');
  checkModelDir(model);
  const stored = readCheckpointConfig(join(model, 'config.json')).quantization;
  if (stored) throw new UsageError(`--model ${model} is already quantized (quantization_config ${stored.method}); quantize the unquantized checkpoint`);
  const quant = r.choice('quant', ['nf4', 'int4'] as const, 'nf4');
  const block = r.has('block') ? r.int('block', 0, 1) : undefined;
  const tile = readTile(r, quant);
  const options = quantizeOptionsFor({ quant, ...(block !== undefined ? { block } : {}), ...(tile ? { blocks: tile } : {}) })!;
  const out = r.string('out');
  if (out !== undefined) assertFreshOutput(resolve(out));
  const dtype = r.choice('dtype', ['float32', 'bfloat16', 'float16'] as const, 'float32');
  if (r.has('dtype') && out === undefined) throw new UsageError('--dtype applies to the checkpoint written with --out');

  const rows: LayerRow[] = [];
  const loaded = loadLlama(model, {
    linearFactory: (name, weight) => {
      try {
        const q = noGrad(() => quantizeLinear(weight, options));
        rows.push({ layer: name, description: q.describe(), bitsPerParameter: q.bitsPerParameter, stats: quantizationError(weight, q) });
        return new QuantizedBase(q);
      } catch (error) {
        throw new Error(`quantizing ${name}: ${(error as Error).message}`);
      } finally {
        weight.dispose();
      }
    },
  });
  try {
    io.stdout.write(formatErrorTable(rows, options));
    const report = { model: resolve(model), options, layers: rows };
    if (out !== undefined) {
      writeDirectoryAtomically(out, (tmp) => {
        saveLlama(loaded, tmp, { dtype, quantized: true });
        copyTokenizerFiles(model, tmp);
        writeFileAtomic(join(tmp, QUANTIZATION_REPORT), jsonText(report));
      });
      io.stdout.write(`${resolve(out)}\n`);
    }
    const reportPath = r.string('report');
    if (reportPath) writeFileAtomic(resolve(reportPath), jsonText(report));
  } finally {
    loaded.dispose();
  }
  return 0;
}

// `blora quantize --out` and `blora merge` writing 4-bit checkpoints, and `blora eval` reading
// them: a QA-BLoRA merge keeps the base's INT4 codes and scales, and the merged model answers
// the multiple-choice questions exactly as the adapter model does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader } from '@blora/tensor';
import { cliWorkspace, runCli } from './cli-fixtures.js';
import { removeDir } from './train-fixtures.js';


let root: string;
let modelDir: string;
let dataFile: string;
let mcFile: string;

beforeAll(() => {
  ({ root, modelDir, dataFile, mcFile } = cliWorkspace('blora-qcli-'));
});

afterAll(() => removeDir(root));

const json = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

function finetune(out: string, method: string, ...extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCli('finetune', '--model', modelDir, '--data', dataFile, '--out', out, '--method', method, '--steps', '3', '--batch', '2',
    '--grad-accum', '1', '--rank', '4', '--lr', '0.01', '--eval-size', '3', '--eval-every', '0', '--save-every', '0',
    '--max-source-len', '96', '--max-target-len', '16', '--quiet', ...extra);
}

/** Raw values of one stored tensor. */
function stored(dir: string, name: string): number[] {
  const reader = SafetensorsReader.open(join(dir, 'model.safetensors'));
  try {
    return Array.from(reader.readTensor(name).toFloat64Array());
  } finally {
    reader.close();
  }
}

describe('blora quantize --out', () => {
  it('writes an NF4 checkpoint in bitsandbytes layout with the tokenizer and the error report; eval reads it', async () => {
    const out = join(root, 'nf4');
    const q = await runCli('quantize', '--model', modelDir, '--quant', 'nf4', '--out', out);
    expect(q.stderr).toBe('');
    expect(q.code).toBe(0);
    expect(q.stdout).toMatch(/model\.layers\.1\.mlp\.down_proj +4\.127 /);
    expect(q.stdout.trim().split('\n').at(-1)).toBe(out);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors', 'quantization-report.json', 'tokenizer.json']);
    expect(json(join(out, 'config.json')).quantization_config).toMatchObject({
      quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_quant_storage: 'uint8',
    });
    const report = json(join(out, 'quantization-report.json')) as { layers: { layer: string; stats: { rmse: number } }[] };
    expect(report.layers).toHaveLength(14);
    expect(report.layers.every((l) => l.stats.rmse > 0)).toBe(true);
    const ev = await runCli('eval', '--model', out, '--mc', mcFile, '--json');
    expect(ev.code).toBe(0);
    expect(JSON.parse(ev.stdout)).toMatchObject({ quant: 'none', base: 'nf4', multipleChoice: { questions: 3 } });
    // Already quantized: refused.
    const again = await runCli('quantize', '--model', out, '--out', join(root, 'nf4-again'));
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('is already quantized (quantization_config bitsandbytes)');
    expect(existsSync(join(root, 'nf4-again'))).toBe(false);
  });

  it('rejects --dtype without --out and a non-empty --out, writing nothing', async () => {
    const r = await runCli('quantize', '--model', modelDir, '--dtype', 'bfloat16');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dtype applies to the checkpoint written with --out');
    const busy = await runCli('quantize', '--model', modelDir, '--out', modelDir);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toContain('already exists and is not empty');
  });
});

describe('blora merge writing 4-bit checkpoints', () => {
  it('QA-BLoRA: exact merge into the INT4 offsets; the merged model scores the questions as the adapter model does', async () => {
    const adapter = join(root, 'qa');
    expect((await finetune(adapter, 'qablora')).code).toBe(0);
    const merged = join(root, 'qa-merged');
    const mg = await runCli('merge', '--adapter', adapter, '--out', merged);
    expect(mg.code).toBe(0);
    expect(mg.stderr).toMatch(/saved model vs adapter model on 3 sequences \(\d+ positions, held-out examples of .*\): max \|Δlogit\|/);
    expect(readdirSync(merged).sort()).toEqual(['config.json', 'merge-report.json', 'model.safetensors', 'tokenizer.json']);
    expect(json(join(merged, 'config.json')).quantization_config).toEqual({
      quant_method: 'blora-int', bits: 4, block_rows: 8, block_cols: 4, scale_dtype: 'float32',
    });
    const report = json(join(merged, 'merge-report.json')) as { method: string; mode: string; stored: string; check: { relative: number; argmaxChanges: number } };
    expect(report).toMatchObject({ method: 'qablora', mode: 'exact', stored: 'int4' });
    expect(report.check.relative).toBeLessThan(1e-5);
    expect(report.check.argmaxChanges).toBe(0);

    // Codes and scales are those of the base quantized as fine-tuning did; offsets moved.
    const base = join(root, 'int4-base');
    expect((await runCli('quantize', '--model', modelDir, '--quant', 'int4', '--tile', '8x4', '--out', base)).code).toBe(0);
    const w = 'model.layers.0.mlp.gate_proj.weight';
    expect(stored(merged, w)).toEqual(stored(base, w));
    expect(stored(merged, `${w}.scales`)).toEqual(stored(base, `${w}.scales`));
    expect(stored(merged, `${w}.offsets`)).not.toEqual(stored(base, `${w}.offsets`));

    const withAdapter = await runCli('eval', '--adapter', adapter, '--mc', mcFile, '--out', join(root, 'ev-adapter.json'));
    const mergedEval = await runCli('eval', '--model', merged, '--mc', mcFile, '--out', join(root, 'ev-merged.json'));
    expect(withAdapter.code).toBe(0);
    expect(mergedEval.code).toBe(0);
    type McResult = { multipleChoice: { accuracy: number; accuracyNorm: number }; questions: { predicted: number; logLikelihoods: number[] }[] };
    const a = json(join(root, 'ev-adapter.json')) as McResult;
    const b = json(join(root, 'ev-merged.json')) as McResult;
    expect(b.multipleChoice).toEqual(a.multipleChoice);
    expect(b.questions.map((q) => q.predicted)).toEqual(a.questions.map((q) => q.predicted));
    a.questions.forEach((q, i) => q.logLikelihoods.forEach((ll, j) => expect(Math.abs(b.questions[i]!.logLikelihoods[j]! - ll)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ll)))));
  });

  it('QA-BLoRA in the factor form (QA-LoRA when lambda-out is 1) merges exactly too', async () => {
    const adapter = join(root, 'qa-factors');
    expect((await finetune(adapter, 'qablora', '--form', 'factors', '--lambda-in', '8', '--lambda-out', '1')).code).toBe(0);
    const config = json(join(adapter, 'adapter_config.json')) as { blora: { form: string; lambda_in: number; lambda_out: number } };
    expect(config.blora).toMatchObject({ form: 'factors', lambda_in: 8, lambda_out: 1 });
    const run = json(join(adapter, 'run.json'));
    expect(run).toMatchObject({ form: 'factors', lambdaIn: 8, lambdaOut: 1 });
    const merged = join(root, 'qa-factors-merged');
    expect((await runCli('merge', '--adapter', adapter, '--out', merged)).code).toBe(0);
    const report = json(join(merged, 'merge-report.json')) as { mode: string; check: { relative: number; argmaxChanges: number } };
    expect(report.mode).toBe('exact');
    expect(report.check.relative).toBeLessThan(1e-5);
    expect(report.check.argmaxChanges).toBe(0);
  });

  it('Q-BLoRA on NF4: dense by default, 4-bit with --requantize and its error report; bad flag combinations exit 2', async () => {
    const adapter = join(root, 'qb');
    expect((await finetune(adapter, 'qblora')).code).toBe(0);
    const dense = join(root, 'qb-dense');
    const d = await runCli('merge', '--adapter', adapter, '--out', dense, '--check', '0');
    expect(d.code).toBe(0);
    expect(json(join(dense, 'config.json')).quantization_config).toBeUndefined();
    expect(json(join(dense, 'merge-report.json'))).toMatchObject({ mode: 'dense', stored: 'dense', check: null });

    const requant = join(root, 'qb-int4');
    const r = await runCli('merge', '--adapter', adapter, '--out', requant, '--requantize', 'int4', '--requantize-block', '16');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/model\.layers\.0\.self_attn\.q_proj: Q-BLoRA requantize -> int4 \[32, 32\] blocks 1x16, float16 scales on cpu .*re-quantization rmse \d\.\d{3}e[-+]\d+/);
    expect(json(join(requant, 'config.json')).quantization_config).toMatchObject({ quant_method: 'blora-int', block_rows: 1, block_cols: 16 });
    const report = json(join(requant, 'merge-report.json')) as { layers: { requantizationError: { rmse: number } }[]; check: { relative: number } };
    expect(report.layers.every((l) => l.requantizationError.rmse > 0)).toBe(true);
    expect(report.check.relative).toBeGreaterThan(0); // lossy, and reported
    const ev = await runCli('eval', '--model', requant, '--mc', mcFile);
    expect(ev.code).toBe(0);
    expect(ev.stdout).toContain('(int4 base)');

    for (const [flags, message] of [
      [['--requantize', 'int4', '--mode', 'dense'], '--requantize int4 contradicts --mode dense'],
      [['--mode', 'exact'], 'an exact merge into NF4 is impossible'],
      [['--offsets', 'float8'], '--offsets must be one of float32, float16'],
      [['--requantize', 'int3'], '--requantize must be one of nf4, int4'],
      [['--requantize-block', '16'], '--requantize-block applies to --requantize'],
    ] as const) {
      const out = join(root, `bad-${flags.join('')}`);
      const bad = await runCli('merge', '--adapter', adapter, '--out', out, ...flags);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});

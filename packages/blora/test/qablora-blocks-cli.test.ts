// `blora finetune --method qablora --tile RxC`: INT4 blocks smaller than the adapter's λout x λin
// tile (each inside one tile), kept in run.json, and used again by eval, merge and generate, so
// the adapter still merges exactly into the blocks' offsets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FINETUNE_SPEC, FlagReader, parseFlags, quantizeOptionsFor, resolveFinetuneSettings, UsageError } from '../src/cli/index.js';
import { adapterBlockSettings, readRunSettings } from '../src/cli/model-io.js';
import { jsonText } from '../src/train/files.js';
import { cliWorkspace, runCli } from './cli-fixtures.js';
import { removeDir } from './train-fixtures.js';

let root: string;
let modelDir: string;
let dataFile: string;
let mcFile: string;

beforeAll(() => {
  ({ root, modelDir, dataFile, mcFile } = cliWorkspace('blora-qablocks-'));
});

afterAll(() => removeDir(root));

const json = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

/** The settings `blora finetune` resolves from `flags` (with the workspace's model and data). */
const settings = (...flags: string[]) =>
  resolveFinetuneSettings(new FlagReader(parseFlags(FINETUNE_SPEC, ['--model', modelDir, '--data', dataFile, ...flags])!));

describe('finetune --tile: parsing and checks', () => {
  it('stores the block shape of a qablora INT4 run: --tile, else the whole tile; null for the other methods and bases', () => {
    expect(settings('--method', 'qablora', '--lambda', '8', '--tile', '4x8')).toMatchObject({ lambdaIn: 8, lambdaOut: 8, block: null, blockShape: { rows: 4, cols: 8 } });
    expect(settings('--method', 'qablora', '--lambda-in', '8', '--lambda-out', '4', '--tile', '1x2')).toMatchObject({ blockShape: { rows: 1, cols: 2 } });
    // --block that agrees with the shape is accepted and kept as given.
    expect(settings('--method', 'qablora', '--lambda', '8', '--tile', '4x8', '--block', '32')).toMatchObject({ block: 32, blockShape: { rows: 4, cols: 8 } });
    expect(settings('--method', 'qablora')).toMatchObject({ blockShape: { rows: 8, cols: 4 } });
    expect(settings('--method', 'qablora', '--block', '32')).toMatchObject({ block: 32, blockShape: { rows: 8, cols: 4 } });
    expect(settings('--method', 'qablora', '--quant', 'none')).toMatchObject({ blockShape: null });
    expect(settings('--method', 'qblora')).toMatchObject({ blockShape: null });
    expect(settings('--method', 'lora')).toMatchObject({ blockShape: null });
  });

  it.each([
    [['--method', 'qablora', '--lambda', '8', '--tile', '16x8'],
      /--tile 16x8: quantization blocks of 16 x 8 \(rows x cols\) do not lie inside the adapter's tiles of λ2 x λ1 = 8 x 8: block rows 16 do not divide λ2 = 8,/],
    [['--method', 'qablora', '--lambda', '8', '--tile', '4x3'], /--tile 4x3: .*block columns 3 do not divide λ1 = 8/],
    [['--method', 'qablora', '--tile', '3x8'], /block rows 3 do not divide λ2 = 8 and block columns 8 do not divide λ1 = 4/],
    [['--method', 'qablora', '--lambda', '8', '--tile', '4x8', '--block', '64'], /--block 64 does not match the INT4 blocks of 4 x 8 = 32 elements/],
    [['--method', 'qablora', '--lambda', '8', '--block', '32'], /--block 32 does not match QA-BLoRA's tiles: INT4 blocks are λout x λin = 8 x 8 = 64/],
    [['--method', 'qablora', '--tile', '4by8'], /--tile must look like 8x4 \(rows x columns\), got '4by8'/],
    [['--method', 'qablora', '--tile', '0x4'], /--tile must look like 8x4 \(rows x columns\), got '0x4'/],
    [['--method', 'qablora', '--tile', '99999999999999999999x4'], /--tile must look like 8x4/],
    [['--method', 'qblora', '--tile', '2x2'], /--tile is for --method qablora \(INT4 blocks inside the adapter's tiles\); qblora sets its blocks with --block/],
    [['--method', 'qablora', '--quant', 'none', '--tile', '4x4'], /--tile applies to --quant int4, got --quant none/],
  ])('finetune %j: exit 2 naming the numbers, nothing written', async (bad, message) => {
    const out = join(root, `bad-${Math.random().toString(36).slice(2)}`);
    const r = await runCli('finetune', '--model', modelDir, '--data', dataFile, '--out', out, ...(bad as string[]));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^blora finetune: error: /);
    expect(r.stderr).toMatch(message as RegExp);
    expect(existsSync(out)).toBe(false);
  });

  it('round-trips the block shape through run.json; resuming keeps it, and an older run.json without it uses the tile', () => {
    const saved = settings('--method', 'qablora', '--lambda', '8', '--tile', '4x8', '--steps', '7');
    const dir = join(root, 'run-json');
    mkdirSync(dir);
    writeFileSync(join(dir, 'run.json'), jsonText(saved));
    const read = readRunSettings(dir)!;
    expect(read).toEqual(saved);
    const resumed = resolveFinetuneSettings(new FlagReader(parseFlags(FINETUNE_SPEC, ['--lr', '1e-3'])!), read);
    expect(resumed).toEqual({ ...saved, lr: 1e-3 });
    const { blockShape: _dropped, ...older } = saved;
    expect(resolveFinetuneSettings(new FlagReader(parseFlags(FINETUNE_SPEC, [])!), older).blockShape).toEqual({ rows: 8, cols: 8 });
    // A saved shape that does not fit the tiles (a hand-edited file) is refused before loading.
    const edited = { ...saved, blockShape: { rows: 16, cols: 8 } };
    expect(() => resolveFinetuneSettings(new FlagReader(parseFlags(FINETUNE_SPEC, [])!), edited))
      .toThrow(/QA-BLoRA: quantization blocks of 16 x 8 .* tiles of λ2 x λ1 = 8 x 8/);
  });

  it.each([
    [{ rows: 0, cols: 8 }], [[4, 8]], [{ rows: 4 }], ['4x8'], [{ rows: 4, cols: 8, depth: 1 }], [{ rows: 4.5, cols: 8 }],
  ])('run.json with blockShape %j is refused, naming the field', (shape) => {
    const dir = join(root, `run-${Math.random().toString(36).slice(2)}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ method: 'qablora', blockShape: shape }));
    expect(() => readRunSettings(dir)).toThrow(/field 'blockShape' must be null or \{"rows": R, "cols": C\} with positive integers R and C, got /);
  });
});

describe('the base of a saved QA-BLoRA adapter', () => {
  it('is quantized with the stored block shape, else blocks of the whole tile', () => {
    const config = { method: 'qablora' as const, lambdaIn: 8, lambdaOut: 8 };
    expect(adapterBlockSettings({ blockShape: { rows: 4, cols: 8 } }, config)).toEqual({ tile: { rows: 8, cols: 8 }, blocks: { rows: 4, cols: 8 } });
    expect(adapterBlockSettings({ blockShape: null }, config)).toEqual({ tile: { rows: 8, cols: 8 } });
    expect(adapterBlockSettings(null, config)).toEqual({ tile: { rows: 8, cols: 8 } });
    expect(adapterBlockSettings(null, { method: 'qablora', lambda: 2 })).toEqual({ tile: { rows: 2, cols: 2 } });
    expect(adapterBlockSettings(null, { method: 'qablora' })).toEqual({ tile: { rows: 8, cols: 4 } });
    expect(adapterBlockSettings({ blockShape: { rows: 4, cols: 8 } }, { method: 'qblora', lambda: 2 })).toEqual({});
    expect(adapterBlockSettings(null, null)).toEqual({});
  });

  it('gives the quantizer blocks inside the tile, and refuses blocks that straddle tiles', () => {
    const tile = { rows: 8, cols: 8 };
    expect(quantizeOptionsFor({ quant: 'int4', tile, blocks: { rows: 4, cols: 8 } })).toEqual({ format: 'int4', blockRows: 4, blockCols: 8 });
    expect(quantizeOptionsFor({ quant: 'int4', tile })).toEqual({ format: 'int4', blockRows: 8, blockCols: 8 });
    expect(quantizeOptionsFor({ quant: 'int4', blocks: { rows: 1, cols: 16 } })).toEqual({ format: 'int4', blockRows: 1, blockCols: 16 });
    expect(quantizeOptionsFor({ quant: 'nf4', tile, blocks: { rows: 4, cols: 8 } })).toEqual({ format: 'nf4', blocksize: 64, doubleQuant: true });
    expect(quantizeOptionsFor({ quant: 'none', tile, blocks: { rows: 4, cols: 8 } })).toBeNull();
    const straddle = () => quantizeOptionsFor({ quant: 'int4', tile, blocks: { rows: 8, cols: 16 } });
    expect(straddle).toThrow(UsageError);
    expect(straddle).toThrow(/QA-BLoRA: quantization blocks of 8 x 16 .* block columns 16 do not divide λ1 = 8/);
  });
});

describe('QA-BLoRA (8, 8) on blocks of 4 x 8, end to end', () => {
  it('trains, merges exactly into the 4 x 8 blocks, and the merged model scores as the adapter model', async () => {
    const adapter = join(root, 'qa-4x8');
    const ft = await runCli('finetune', '--model', modelDir, '--data', dataFile, '--out', adapter, '--method', 'qablora',
      '--lambda-in', '8', '--lambda-out', '8', '--tile', '4x8', '--steps', '3', '--batch', '2', '--grad-accum', '1', '--rank', '4',
      '--lr', '0.01', '--eval-size', '3', '--save-every', '0', '--max-source-len', '96', '--max-target-len', '16', '--quiet');
    expect(ft.stderr).toBe('');
    expect(ft.code).toBe(0);
    expect(json(join(adapter, 'run.json'))).toMatchObject({ method: 'qablora', lambdaIn: 8, lambdaOut: 8, block: null, blockShape: { rows: 4, cols: 8 } });

    const merged = join(root, 'qa-4x8-merged');
    const mg = await runCli('merge', '--adapter', adapter, '--out', merged);
    expect(mg.code).toBe(0);
    expect(json(join(merged, 'config.json')).quantization_config).toEqual({
      quant_method: 'blora-int', bits: 4, block_rows: 4, block_cols: 8, scale_dtype: 'float32',
    });
    const report = json(join(merged, 'merge-report.json')) as { mode: string; stored: string; check: { relative: number; argmaxChanges: number } };
    expect(report).toMatchObject({ mode: 'exact', stored: 'int4' });
    expect(report.check.relative).toBeLessThan(1e-5);
    expect(report.check.argmaxChanges).toBe(0);

    type McResult = { multipleChoice: { accuracy: number; accuracyNorm: number }; questions: { predicted: number; logLikelihoods: number[] }[] };
    const evalTo = async (file: string, ...flags: string[]): Promise<McResult> => {
      const r = await runCli('eval', ...flags, '--mc', mcFile, '--out', join(root, file));
      expect(r.code).toBe(0);
      return json(join(root, file)) as McResult;
    };
    const withAdapter = await evalTo('ev-adapter.json', '--adapter', adapter);
    const mergedEval = await evalTo('ev-merged.json', '--model', merged);
    expect(mergedEval.multipleChoice).toEqual(withAdapter.multipleChoice);
    expect(mergedEval.questions.map((q) => q.predicted)).toEqual(withAdapter.questions.map((q) => q.predicted));
    const gap = (a: McResult, b: McResult): number =>
      Math.max(...a.questions.flatMap((q, i) => q.logLikelihoods.map((ll, j) => Math.abs(b.questions[i]!.logLikelihoods[j]! - ll) / Math.max(1, Math.abs(ll)))));
    expect(gap(withAdapter, mergedEval)).toBeLessThan(1e-4);

    // Without the stored shape (an older run.json) the base is quantized in 8 x 8 blocks: a different model.
    const legacy = join(root, 'qa-4x8-legacy');
    cpSync(adapter, legacy, { recursive: true });
    const { blockShape: _dropped, ...older } = json(join(adapter, 'run.json'));
    writeFileSync(join(legacy, 'run.json'), jsonText(older));
    expect(gap(await evalTo('ev-legacy.json', '--adapter', legacy), mergedEval)).toBeGreaterThan(1e-4);

    const gen = await runCli('generate', '--adapter', adapter, '--prompt', 'a wind', '--max-new-tokens', '2');
    expect(gen.code).toBe(0);
  });
});

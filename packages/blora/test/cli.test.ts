import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FINETUNE_SPEC, FlagReader, parseFlags, resolveFinetuneSettings } from '../src/cli/index.js';
import { readLog } from '../src/train/index.js';
import { cliWorkspace, runCli } from './cli-fixtures.js';
import { removeDir } from './train-fixtures.js';


let root: string;
let modelDir: string;
let dataFile: string;
let mcFile: string;

beforeAll(() => {
  ({ root, modelDir, dataFile, mcFile } = cliWorkspace('blora-cli-'));
});

afterAll(() => removeDir(root));

/** Flags of a small, fast fine-tuning run. */
function small(out: string, ...extra: string[]): string[] {
  return ['finetune', '--model', modelDir, '--data', dataFile, '--out', out, '--steps', '4', '--batch', '2', '--grad-accum', '1',
    '--rank', '4', '--eval-size', '3', '--mc', mcFile, '--save-every', '2', '--max-source-len', '96', '--max-target-len', '16', '--quiet', ...extra];
}

describe('blora command line: arguments', () => {
  it('prints the overview and per-command help', async () => {
    expect((await runCli()).code).toBe(2);
    const top = await runCli('--help');
    expect(top.code).toBe(0);
    for (const c of ['finetune', 'eval', 'generate', 'merge', 'quantize']) {
      expect(top.stdout).toContain(`  ${c} `);
      const help = await runCli(c, '--help');
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: blora ${c}`));
      expect(help.stdout).toContain('-h, --help');
    }
    const unknown = await runCli('train');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'train'");
  });

  it.each([
    [['--stpes', '3'], /unknown option --stpes \(did you mean --steps\?\)/],
    [['--steps', '0'], /--steps must be an integer >= 1, got 0/],
    [['--steps', 'ten'], /--steps must be an integer, got 'ten'/],
    [['--steps'], /--steps/],
    [['--lr=-1'], /--lr must be > 0, got -1/],
    [['--lr', '-1'], /Option '--lr' argument is ambiguous/],
    [['--method', 'dora'], /--method must be one of lora, qlora, qblora, qablora, got 'dora'/],
    [['--method', 'qablora', '--quant', 'nf4'], /qablora needs an offset-carrying base/],
    [['--method', 'lora', '--lambda', '2'], /--method lora has no balancing factor/],
    [['--method', 'qblora', '--form', 'matrix'], /--form is for --method qablora; qblora always trains the factors/],
    [['--method', 'qablora', '--form', 'svd'], /--form must be one of matrix, factors, got 'svd'/],
    [['--method', 'qablora', '--block', '64'], /--block 64 does not match QA-BLoRA's tiles: INT4 blocks are λout x λin = 8 x 4 = 32/],
    [['--quant', 'nf4', '--block', '48'], /--block for nf4 must be a power of two/],
    [['--seed', '1.5'], /--seed must be an integer/],
    [['--steps', '2', '--steps', '3'], /--steps was given 2 times/],
    [['extra'], /unexpected argument 'extra'/],
    [['--data', '/no/such/file.jsonl'], /--data \/no\/such\/file\.jsonl: no such file/],
    [['--model', '/no/such/dir'], /--model \/no\/such\/dir: no such directory/],
  ])('finetune %j: exit 2 with a clear message, nothing written', async (bad, message) => {
    const out = join(root, `bad-${Math.random().toString(36).slice(2)}`);
    const flags = bad as string[];
    const base = ['finetune', '--out', out];
    if (!flags.includes('--model')) base.push('--model', modelDir);
    if (!flags.includes('--data')) base.push('--data', dataFile);
    const r = await runCli(...base, ...flags);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^blora finetune: error: /);
    expect(r.stderr).toMatch(message as RegExp);
    expect(existsSync(out)).toBe(false);
  });

  it('fills in the released recipe and each method\'s factors and base format', () => {
    const settings = (...flags: string[]) =>
      resolveFinetuneSettings(new FlagReader(parseFlags(FINETUNE_SPEC, ['--model', modelDir, '--data', dataFile, ...flags])!));
    expect(settings()).toMatchObject({
      method: 'qblora', rank: 64, alpha: 16, dropout: 0, lambdaIn: 2, lambdaOut: 2, quant: 'nf4', block: null,
      steps: 10000, lr: 2e-4, batch: 4, gradAccum: 4, warmupRatio: 0.03, maxGradNorm: 0.3, seed: 42, maxSourceLen: 384, maxTargetLen: 128,
    });
    expect(settings('--method', 'qablora')).toMatchObject({ lambdaIn: 4, lambdaOut: 8, quant: 'int4', form: 'matrix' });
    expect(settings('--method', 'qablora', '--form', 'factors')).toMatchObject({ form: 'factors' });
    expect(settings('--method', 'qblora')).toMatchObject({ form: 'factors' });
    expect(settings('--method', 'qablora', '--lambda', '8')).toMatchObject({ lambdaIn: 8, lambdaOut: 8 });
    expect(settings('--method', 'qblora', '--lambda-in', '4')).toMatchObject({ lambdaIn: 4, lambdaOut: 4 });
    expect(settings('--method', 'lora')).toMatchObject({ lambdaIn: 1, lambdaOut: 1, quant: 'none' });
    expect(settings('--method', 'qlora')).toMatchObject({ quant: 'nf4' });
    // Resuming keeps the saved settings unless a flag overrides them.
    const saved = settings('--method', 'qablora', '--steps', '7');
    const again = resolveFinetuneSettings(new FlagReader(parseFlags(FINETUNE_SPEC, ['--lr', '1e-3'])!), saved);
    expect(again).toEqual({ ...saved, lr: 1e-3 });
  });

  it('reports a malformed data file by file and line (exit 1) before creating --out', async () => {
    const bad = join(root, 'bad.jsonl');
    writeFileSync(bad, '{"instruction":"a","output":"b"}\n{"instruction":"a"\n');
    const out = join(root, 'never');
    const r = await runCli('finetune', '--model', modelDir, '--data', bad, '--out', out, '--steps', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}:2: not valid JSON`);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a non-empty --out without --resume, and --resume without a checkpoint', async () => {
    const r = await runCli(...small(modelDir));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('already exists and is not empty');
    const none = await runCli(...small(join(root, 'empty'), '--resume'));
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--resume: no checkpoint under');
  });
});

describe('blora command line: a whole run', () => {
  it('fine-tunes, evaluates, generates, merges and quantizes; a resumed run ends with the same adapter', async () => {
    const out = join(root, 'run');
    const ft = await runCli(...small(out));
    expect(ft.stderr).toBe('');
    expect(ft.code).toBe(0);
    expect(ft.stdout.trim()).toBe(out);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'log.jsonl', 'loss.svg', 'summary.json', 'run.json']) {
      expect(existsSync(join(out, f))).toBe(true);
    }
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual(['checkpoint-2', 'checkpoint-4']);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 16, blora: { method: 'qblora', lambda_in: 2, lambda_out: 2 } });
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.training.steps).toBe(4);
    expect(summary.data).toMatchObject({ trainExamples: 9, heldOutExamples: 3, questions: 3 });
    expect(summary.evals).toHaveLength(1);
    expect(summary.evals[0].mcQuestions).toBe(3);
    const log = readLog(join(out, 'log.jsonl'));
    expect(log.map((r) => `${r.type}${r.step}`)).toEqual(['step1', 'step2', 'step3', 'step4', 'eval4']);

    const ev = await runCli('eval', '--adapter', out, '--mc', mcFile, '--data', dataFile);
    expect(ev.code).toBe(0);
    expect(ev.stdout).toMatch(/multiple choice \(3 questions\): acc \d+\.\d\d%, acc_norm \d+\.\d\d%/);
    expect(ev.stdout).toMatch(/held-out loss \(12 examples, \d+ response tokens\): \d+\.\d{4}/);
    expect(ev.stdout).toContain('(nf4 base)');
    const base = await runCli('eval', '--model', modelDir, '--mc', mcFile, '--json');
    expect(base.code).toBe(0);
    expect(JSON.parse(base.stdout)).toMatchObject({ adapter: null, quant: 'none', base: 'dense', multipleChoice: { questions: 3 } });

    const gen = await runCli('generate', '--adapter', out, '--instruction', 'Name a kind of letter.', '--max-new-tokens', '4');
    expect(gen.code).toBe(0);
    expect(gen.stderr).toMatch(/\[\d+ tokens, stopped by (eos|length)\]/);
    const opByOp = await runCli('generate', '--adapter', out, '--instruction', 'Name a kind of letter.', '--max-new-tokens', '4', '--no-graph');
    expect(opByOp.code).toBe(0);
    expect(opByOp.stdout).toBe(gen.stdout);
    expect((await runCli('generate', '--adapter', out)).code).toBe(2);

    const merged = join(root, 'merged');
    const mg = await runCli('merge', '--adapter', out, '--out', merged);
    expect(mg.code).toBe(0);
    expect(readdirSync(merged).sort()).toEqual(['config.json', 'merge-report.json', 'model.safetensors', 'tokenizer.json']);
    expect((await runCli('merge', '--adapter', out, '--out', merged)).code).toBe(2);

    const q = await runCli('quantize', '--model', modelDir, '--quant', 'int4', '--tile', '8x4');
    expect(q.code).toBe(0);
    expect(q.stdout).toContain('model.layers.1.mlp.down_proj');
    const q4 = await runCli('quantize', '--model', modelDir, '--out', join(root, 'q4'));
    expect(q4.code).toBe(0);
    expect(readdirSync(join(root, 'q4')).sort()).toEqual(['config.json', 'model.safetensors', 'quantization-report.json', 'tokenizer.json']);

    // Resume: the same run, interrupted after its checkpoint at step 2, continued with --resume.
    const again = join(root, 'again');
    cpSync(out, again, { recursive: true });
    rmSync(join(again, 'checkpoints', 'checkpoint-4'), { recursive: true });
    rmSync(join(again, 'adapter_model.safetensors'));
    const resumed = await runCli('finetune', '--out', again, '--resume', '--quiet');
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(readFileSync(join(again, 'adapter_model.safetensors'))).toEqual(readFileSync(join(out, 'adapter_model.safetensors')));
    expect(readLog(join(again, 'log.jsonl')).map((r) => `${r.type}${r.step}`)).toEqual(['step1', 'step2', 'step3', 'step4', 'eval4']);
  });
});

// The `blora` command on hostile input: flag values that are zero, negative, not numbers or
// do not fit the model; model directories whose config.json or tokenizer.json are hostile; an
// adapter whose config asks for a huge rank; and a resume whose run.json was damaged. Each
// ends with an exit code and a message naming the file or flag, without touching the output.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type CliIO } from '../src/cli/index.js';
import { listCheckpoints } from '../src/train/index.js';
import { removeDir, tempDir, wordnetExamples, writeJsonl, writeTinyCheckpoint } from './train-fixtures.js';

async function run(...argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const io: CliIO = { stdout: { write: () => true }, stderr: { write: (t: string) => (stderr += t), isTTY: false } };
  return { code: await main(argv, io), stderr };
}

let root: string;
let modelDir: string;
let dataFile: string;
let trained: string;

/** Flags of a two-step run with a checkpoint after each step. */
const small = (out: string, ...extra: string[]): string[] => ['finetune', '--model', modelDir, '--data', dataFile, '--out', out,
  '--steps', '2', '--batch', '1', '--grad-accum', '1', '--rank', '4', '--eval-size', '0', '--save-every', '1',
  '--max-source-len', '64', '--max-target-len', '8', '--quiet', ...extra];

beforeAll(async () => {
  root = tempDir('blora-cli-hostile-');
  modelDir = join(root, 'model');
  writeTinyCheckpoint(modelDir);
  dataFile = join(root, 'train.jsonl');
  writeJsonl(dataFile, wordnetExamples(6));
  trained = join(root, 'trained');
  expect((await run(...small(trained))).code).toBe(0);
});
afterAll(() => removeDir(root));

let count = 0;
const fresh = (): string => join(root, `case-${count++}`);

describe('hostile flag values', () => {
  it.each([
    [['--lr', 'nan'], 2, "--lr must be a number, got 'nan'"],
    [['--lr', 'Infinity'], 2, "--lr must be a number, got 'Infinity'"],
    [['--lr', '0'], 2, '--lr must be > 0, got 0'],
    [['--lr', '1e-3x'], 2, "--lr must be a number, got '1e-3x'"],
    [['--lambda', '0'], 2, '--lambda must be an integer >= 1, got 0'],
    [['--lambda', '-2'], 2, "Option '--lambda' argument is ambiguous"],
    [['--lambda', '2.5'], 2, "--lambda must be an integer, got '2.5'"],
    [['--lambda', '3'], 1, "Q-BLoRA on layer 'model.layers.0.self_attn.q_proj': λin = 3 does not divide in_features = 32"],
    [['--lambda-in', '2', '--lambda-out', '5'], 1, "λout = 5 does not divide out_features = 32"],
    [['--rank', '1000000000000'], 1, 'adapter config: r = 1000000000000 is more than the limit of 65536'],
    [['--rank', '99999999999999999999'], 2, '--rank must be an integer >= 1, got 99999999999999999999'],
  ] as const)('finetune %j: exit %i with a clear message, --out untouched', async (flags, code, message) => {
    const out = fresh();
    const base = small(out);
    if ((flags as readonly string[]).includes('--rank')) base.splice(base.indexOf('--rank'), 2);
    const r = await run(...base, ...flags);
    expect(r.code).toBe(code);
    expect(r.stderr).toContain(message);
    expect(existsSync(out)).toBe(false);
  });
});

describe('hostile model directories', () => {
  const hostileModel = (file: string, edit: (text: string) => string): string => {
    const dir = fresh();
    cpSync(modelDir, dir, { recursive: true });
    writeFileSync(join(dir, file), edit(readFileSync(join(dir, file), 'utf8')));
    return dir;
  };
  it.each([
    ['config.json', (t: string) => t.replace(/"num_hidden_layers": \d+/, '"num_hidden_layers": 1000000000'), "config.json: field 'num_hidden_layers' is 1000000000, more than the limit of 1024"],
    ['config.json', (t: string) => t.replace(/"hidden_size": \d+/, '"hidden_size": 1e12'), "config.json: field 'hidden_size' makes model.embed_tokens.weight"],
    ['config.json', (t: string) => t.replace(/"vocab_size": \d+/, `"vocab_size": ${'['.repeat(50_000)}${']'.repeat(50_000)}`), 'config.json: nested more than 64 levels deep'],
    ['tokenizer.json', (t: string) => t.replace('"model":', `"deep": ${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}, "model":`), 'tokenizer.json: the document is nested more than 64 levels deep'],
    ['tokenizer.json', (t: string) => {
      const json = JSON.parse(t) as { model: { vocab: Record<string, number> } };
      json.model.vocab.x = 1e15;
      return JSON.stringify(json);
    }, 'tokenizer.json: model.vocab["x"] must be a non-negative integer id (at most 2147483647), got 1000000000000000'],
  ] as const)('%s: exit 1 naming the field, nothing written', async (file, edit, message) => {
    const dir = hostileModel(file, edit);
    const out = fresh();
    const r = await run(...small(out).map((a) => (a === modelDir ? dir : a)));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
    expect(existsSync(out)).toBe(false);
  });

  it('merge refuses an adapter whose config asks for a huge rank', async () => {
    const adapter = fresh();
    mkdirSync(adapter);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) cpSync(join(trained, f), join(adapter, f));
    const config = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify({ ...config, r: 1e12 }));
    const message = `${join(adapter, 'adapter_config.json')}: adapter config: r = 1000000000000 is more than the limit of 65536`;
    const merged = fresh();
    const m = await run('merge', '--model', modelDir, '--adapter', adapter, '--out', merged);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain(message);
    expect(existsSync(merged)).toBe(false);
  });
});

describe('resume with a damaged run.json', () => {
  it.each([
    ['cut short', '{"steps": ', 'run.json: not valid JSON'],
    ['an array', '[1, 2]', 'run.json: expected a JSON object of run settings'],
    ['steps as a string', '{"steps": "2"}', `run.json: field 'steps' must be a non-negative integer, got "2"`],
    ['an unknown base format', '{"quant": "int8"}', "run.json: field 'quant' must be one of none, nf4, int4, got \"int8\""],
    ['lr null', '{"lr": null}', "run.json: field 'lr' must be a finite number, got null"],
    ['model as a number', '{"model": 5}', "run.json: field 'model' must be a path, got 5"],
    ['a method nested 20 000 deep', `{"method": ${'['.repeat(20_000)}${']'.repeat(20_000)}}`, "run.json: field 'method' must be one of lora, qlora, qblora, qablora, got [...]"],
    ['a negative lr', '{"lr": -1}', 'training config: lr must be a positive number, got -1'],
  ])('%s: exit 1 naming the problem; the checkpoints stay as they were', async (_what, text, message) => {
    const out = fresh();
    cpSync(trained, out, { recursive: true });
    writeFileSync(join(out, 'run.json'), text);
    const before = readdirSync(join(out, 'checkpoints')).sort();
    const r = await run('finetune', '--out', out, '--resume', '--quiet');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual(before);
    expect(listCheckpoints(join(out, 'checkpoints')).map((c) => c.step)).toEqual([1, 2]);
  });
});

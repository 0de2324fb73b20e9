// adapter_config.json from untrusted sources: damaged copies of a PEFT LoRA config and of a
// Q-BLoRA / QA-BLoRA config are loaded onto a small model; each either loads (and resolves to
// a sane configuration) or fails with an error that names the adapter directory or file, never
// with a TypeError from deep inside or a huge allocation.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryStats } from '@blora/tensor';
import { fuzzJson } from '@blora/tensor/testing';
import {
  ADAPTER_CONFIG_NAME, MAX_ADAPTER_RANK, adapterConfigFromJson, attachAdapters, loadAdapter, readAdapterConfig, resolveAdapterConfig,
  saveAdapter, type AdapterConfig,
} from '../src/index.js';
import { ToyCausalLM, type ToyConfig } from './toy-model.js';

const root = mkdtempSync(join(tmpdir(), 'blora-peft-fuzz-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const cfg: ToyConfig = { vocab: 9, dim: 16, heads: 2, kvHeads: 1, hidden: 32, layers: 2, context: 4 };

/** A PEFT LoRA config as PEFT 0.13 writes it (q_proj and v_proj at r 4, v_proj at r 2). */
const PEFT_LORA = {
  alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: 'meta-llama/Llama-2-7b-hf', bias: 'none', fan_in_fan_out: false,
  inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null,
  loftq_config: {}, lora_alpha: 16, lora_dropout: 0.05, megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null,
  peft_type: 'LORA', r: 4, rank_pattern: { v_proj: 2 }, revision: null, target_modules: ['v_proj', 'q_proj'], task_type: 'CAUSAL_LM',
  use_dora: false, use_rslora: false,
};

/** An adapter directory saved for the toy model with `config`; returns its path. */
function savedAdapter(name: string, config: AdapterConfig): string {
  const dir = join(root, name);
  const attached = attachAdapters(new ToyCausalLM(cfg, 1), config);
  saveAdapter(dir, attached);
  return dir;
}

/** Checks a loaded configuration against its resolved form; returns what is wrong, or null. */
function inconsistency(config: AdapterConfig): string | null {
  const r = resolveAdapterConfig(config);
  if (!(Number.isInteger(r.r) && r.r >= 1 && r.r <= MAX_ADAPTER_RANK)) return `rank ${r.r}`;
  if (!Number.isFinite(r.alpha) || !(r.dropout >= 0 && r.dropout < 1)) return `alpha ${r.alpha} / dropout ${r.dropout}`;
  if (!(Number.isInteger(r.lambdaIn) && r.lambdaIn >= 1 && Number.isInteger(r.lambdaOut) && r.lambdaOut >= 1)) return 'factors';
  return null;
}

describe('adapter_config.json fuzzing', () => {
  const sources: [string, () => { dir: string; text: string }][] = [
    ['a PEFT LoRA config', () => {
      const dir = savedAdapter('peft-lora', { method: 'lora', r: 4, alpha: 16, targetModules: ['q_proj', 'v_proj'], rankPattern: { v_proj: 2 } });
      return { dir, text: JSON.stringify(PEFT_LORA, null, 2) };
    }],
    ['a Q-BLoRA config', () => {
      const dir = savedAdapter('qblora', { method: 'qblora', r: 2, alpha: 8, lambda: 2 });
      return { dir, text: JSON.stringify({ ...PEFT_LORA, r: 2, lora_alpha: 8, rank_pattern: {}, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], blora: { method: 'qblora', lambda_in: 2, lambda_out: 2, form: 'factors', rank_multiplier: 2, version: 1 } }) };
    }],
    ['a QA-BLoRA config', () => {
      const dir = savedAdapter('qablora', { method: 'qablora', r: 2, alpha: 8, lambdaIn: 4, lambdaOut: 8 });
      return { dir, text: JSON.stringify({ ...PEFT_LORA, r: 2, lora_alpha: 8, rank_pattern: {}, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], blora: { method: 'qablora', lambda_in: 4, lambda_out: 8, form: 'matrix', rank_multiplier: 4, version: 1 } }) };
    }],
  ];

  it.each(sources)('damaged copies of %s load or fail naming the adapter', (_what, make) => {
    const { dir, text } = make();
    const model = new ToyCausalLM(cfg, 3);
    // The undamaged config loads onto the model.
    writeFileSync(join(dir, ADAPTER_CONFIG_NAME), text);
    loadAdapter(dir, model).detach();
    const report = fuzzJson(text, { iterations: 700, seed: text.length }, (bytes) => {
      writeFileSync(join(dir, ADAPTER_CONFIG_NAME), bytes);
      const config = readAdapterConfig(dir);
      const problem = inconsistency(config);
      if (problem) return problem;
      try {
        loadAdapter(dir, model).detach();
      } catch (error) {
        // A config that parses may still not fit this model (a target it lacks, a λ that does not divide).
        if (!(error instanceof Error && error.message.startsWith(`${dir}`) && !/Cannot read|is not a function|Maximum call stack/.test(error.message))) throw error;
      }
      return null;
    }, (error) => error instanceof Error && error.constructor === Error && error.message.startsWith(`${join(dir, ADAPTER_CONFIG_NAME)}: `));
    expect(report.problems).toEqual([]);
    expect(report.accepted).toBeGreaterThan(30);
    expect(report.rejected).toBeGreaterThan(300);
  });
});

describe('hostile adapter_config.json', () => {
  const deep = '['.repeat(20_000) + ']'.repeat(20_000);
  const cases: [string, Record<string, string>, string][] = [
    ['rank 1e12', { r: '1e12' }, `adapter config: r = 1000000000000 is more than the limit of ${MAX_ADAPTER_RANK}`],
    ['rank 2^53 + 1', { r: '9007199254740993' }, 'adapter config: r = 9007199254740992 is more than the limit'],
    ['rank as a string', { r: '"8"' }, 'r must be a number, got "8"'],
    ['negative rank', { r: '-4' }, 'adapter config: r must be a positive integer, got -4'],
    ['rank pattern 1e9', { rank_pattern: '{"v_proj": 1e9}' }, "adapter config: rankPattern['v_proj'] = 1000000000 is more than the limit"],
    ['alpha 1e400 (Infinity)', { lora_alpha: '1e400' }, 'adapter config: alpha must be a finite number, got Infinity'],
    ['dropout 1.5', { lora_dropout: '1.5' }, 'adapter config: dropout must be in [0, 1), got 1.5'],
    ['deeply nested alpha', { lora_alpha: deep }, 'lora_alpha must be a number, got [...]'],
    ['deeply nested peft_type', { peft_type: deep }, 'peft_type must be "LORA", got [...]'],
    ['deeply nested target list', { target_modules: deep }, 'target_modules must be a list of strings or a string, got [...]'],
    ['use_rslora as a string', { use_rslora: '"yes"' }, 'use_rslora must be true or false, got "yes"'],
    ['an invalid target expression', { target_modules: '"(q_proj"' }, 'target_modules holds an invalid regular expression "(q_proj"'],
    ['an invalid layers pattern', { layers_pattern: '"["' }, 'layers_pattern holds an invalid regular expression "["'],
    ['an invalid rank pattern key', { rank_pattern: '{"v_proj)": 2}' }, 'rank_pattern holds an invalid regular expression "v_proj)"'],
    ['λin of 0', { blora: '{"method":"qblora","lambda_in":0,"lambda_out":2}' }, 'adapter config: lambdaIn must be a positive integer, got 0'],
    ['λin as a string', { blora: '{"method":"qblora","lambda_in":"2","lambda_out":2}' }, 'blora.lambda_in must be a number, got "2"'],
    ['λin -2', { blora: '{"method":"qblora","lambda_in":-2,"lambda_out":-2}' }, 'adapter config: lambdaIn must be a positive integer, got -2'],
    ['λ with the wrong form', { blora: '{"method":"qblora","lambda_in":2,"lambda_out":2,"form":"matrix"}' }, "the single matrix (form 'matrix') is QA-BLoRA's"],
    ['an unknown form', { blora: '{"method":"qablora","lambda_in":2,"lambda_out":2,"form":7}' }, 'blora.form must be "factors" or "matrix", got 7'],
    ['a version as an array', { blora: '{"method":"qblora","version":[2]}' }, 'blora.version must be a number, got [2]'],
    ['an unknown method', { blora: '{"method":"constructor"}' }, 'blora.method must be one of lora, qblora, qablora, got "constructor"'],
  ];

  it.each(cases)('%s', (_what, fields, message) => {
    const dir = join(root, 'hostile');
    mkdirSync(dir, { recursive: true });
    let text = JSON.stringify({ ...PEFT_LORA, ...Object.fromEntries(Object.keys(fields).map((k) => [k, `@${k}@`])) });
    for (const [k, raw] of Object.entries(fields)) text = text.replace(JSON.stringify(`@${k}@`), () => raw);
    writeFileSync(join(dir, ADAPTER_CONFIG_NAME), text);
    const path = join(dir, ADAPTER_CONFIG_NAME);
    expect(() => readAdapterConfig(dir)).toThrow(`${path}: `);
    expect(() => readAdapterConfig(dir)).toThrow(message);
  });

  it('a λ that does not divide the layer is refused when loading, naming the layer, before any adapter is allocated', () => {
    const dir = savedAdapter('bad-lambda', { method: 'qblora', r: 2, alpha: 8, lambda: 2 });
    writeFileSync(join(dir, ADAPTER_CONFIG_NAME), JSON.stringify({ ...PEFT_LORA, blora: { method: 'qblora', lambda_in: 3, lambda_out: 3 } }));
    const model = new ToyCausalLM(cfg, 3);
    const before = memoryStats('cpu');
    expect(() => loadAdapter(dir, model)).toThrow(`${dir}: the adapter does not fit the model: Q-BLoRA on layer 'model.layers.0.self_attn.q_proj': λin = 3 does not divide in_features = 16`);
    expect(memoryStats('cpu')).toEqual(before);
  });

  it('parsing an object directly names the label', () => {
    expect(() => adapterConfigFromJson({ ...PEFT_LORA, r: 0 }, 'cfg')).toThrow('cfg: adapter config: r must be a positive integer, got 0');
    expect(adapterConfigFromJson({ ...PEFT_LORA, r: null }).r).toBeUndefined(); // absent: the default rank
  });
});

// Adapter files in PEFT's layout: round trips for every method, a hand-written PEFT LoRA
// adapter loaded here, and adapter files that do not match the model.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsReader, tensor, tidy, writeSafetensors, type Tensor } from '@blora/tensor';
import { randomValues } from '@blora/tensor/testing';
import { assignInPlace, noGrad, type Linear } from '@blora/autograd';
import {
  AdaptedLinear, ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, attachAdapters, loadAdapter, saveAdapter, writeFileAtomic, type AdapterConfig,
} from '../src/index.js';
import { randomizeAdapter, refProduct, values } from './helpers.js';
import { blockLinearPaths, ToyCausalLM, type ToyConfig } from './toy-model.js';

const root = mkdtempSync(join(tmpdir(), 'blora-peft-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `adapter-${dirCount++}`);

const cfg: ToyConfig = { vocab: 9, dim: 16, heads: 2, kvHeads: 1, hidden: 32, layers: 2, context: 4 };
const ids = tensor(Int32Array.from(randomValues(8, 1, 0, 9), Math.floor), { shape: [2, 4], dtype: 'int32' });
const logits = (m: ToyCausalLM) => noGrad(() => tidy(() => values(m.eval().logits(ids))));

/** The field set of PEFT 0.7+'s LoraConfig as saved in adapter_config.json. */
const PEFT_FIELDS = [
  'alpha_pattern', 'auto_mapping', 'base_model_name_or_path', 'bias', 'fan_in_fan_out', 'inference_mode', 'init_lora_weights',
  'layers_pattern', 'layers_to_transform', 'lora_alpha', 'lora_dropout', 'modules_to_save', 'peft_type', 'r', 'rank_pattern',
  'revision', 'target_modules', 'task_type', 'use_rslora',
];

function roundTrip(config: AdapterConfig): { json: Record<string, unknown>; reader: SafetensorsReader; dir: string } {
  const model = new ToyCausalLM(cfg, 7);
  const attached = attachAdapters(model, config);
  attached.layers.forEach((l, name) => randomizeAdapter(l.adapter, name.length));
  const expected = logits(model);
  const dir = freshDir();
  saveAdapter(dir, attached, { baseModelNameOrPath: 'toy/llama' });
  expect(readdirSync(dir).sort()).toEqual([ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME]); // no temporary files left
  const fresh = new ToyCausalLM(cfg, 7);
  const loaded = loadAdapter(dir, fresh);
  expect(logits(fresh)).toEqual(expected);
  expect(loaded.trainableParameters().every((t) => !t.requiresGrad)).toBe(true);
  const json = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_NAME), 'utf8')) as Record<string, unknown>;
  return { json, reader: SafetensorsReader.open(join(dir, ADAPTER_WEIGHTS_NAME)), dir };
}

describe('round trips', () => {
  it("LoRA: PEFT's exact field set and tensor names, loaded back to the same outputs", () => {
    const { json, reader } = roundTrip({ method: 'lora', r: 4, alpha: 8, dropout: 0.05 });
    expect(Object.keys(json)).toEqual(PEFT_FIELDS);
    expect(json).toMatchObject({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0.05, bias: 'none', use_rslora: false,
      base_model_name_or_path: 'toy/llama', fan_in_fan_out: false, modules_to_save: null, rank_pattern: {}, alpha_pattern: {},
      target_modules: ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'],
    });
    const names = blockLinearPaths(2).flatMap((p) => [`base_model.model.${p}.lora_A.weight`, `base_model.model.${p}.lora_B.weight`]);
    expect(reader.names().sort()).toEqual(names.sort());
    expect(reader.entries.get('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight')).toMatchObject({ dtype: 'F32', shape: [4, 16] });
    expect(reader.entries.get('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight')).toMatchObject({ dtype: 'F32', shape: [8, 4] });
    expect(reader.metadata).toEqual({ format: 'pt' });
    reader.close();
  });

  it('Q-BLoRA: a "blora" section, pooled factor shapes under the LoRA names', () => {
    const { json, reader } = roundTrip({ method: 'qblora', lambdaIn: 4, lambdaOut: 2, r: 2, alpha: 4, rankPattern: { down_proj: 3 } });
    expect(json.blora).toEqual({ method: 'qblora', lambda_in: 4, lambda_out: 2, form: 'factors', rank_multiplier: 4, version: 1 });
    expect(json.rank_pattern).toEqual({ down_proj: 3 });
    expect(reader.entries.get('base_model.model.model.layers.1.mlp.up_proj.lora_A.weight')!.shape).toEqual([8, 4]);
    expect(reader.entries.get('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight')!.shape).toEqual([16, 8]);
    expect(reader.entries.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')!.shape).toEqual([12, 8]);
    reader.close();
  });

  it('QA-BLoRA: the single matrix as lora_M.weight [out/λ2, in/λ1]; the factor form as lora_A / lora_B', () => {
    const matrix = roundTrip({ method: 'qablora', lambdaIn: 4, lambdaOut: 8, r: 4, alpha: 4, targetModules: ['gate_proj', 'o_proj'] });
    expect(matrix.json.blora).toMatchObject({ method: 'qablora', lambda_in: 4, lambda_out: 8, form: 'matrix' });
    expect(matrix.reader.names().sort()).toEqual([
      'base_model.model.model.layers.0.mlp.gate_proj.lora_M.weight', 'base_model.model.model.layers.0.self_attn.o_proj.lora_M.weight',
      'base_model.model.model.layers.1.mlp.gate_proj.lora_M.weight', 'base_model.model.model.layers.1.self_attn.o_proj.lora_M.weight',
    ]);
    expect(matrix.reader.entries.get('base_model.model.model.layers.0.mlp.gate_proj.lora_M.weight')!.shape).toEqual([4, 4]);
    matrix.reader.close();
    const factors = roundTrip({ method: 'qablora', lambdaIn: 2, lambdaOut: 4, form: 'factors', r: 1, alpha: 2, targetModules: ['v_proj'] });
    expect(factors.reader.entries.get('base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight')!.shape).toEqual([2, 8]);
    factors.reader.close();
  });

  it('loads trainable on request, to resume training', () => {
    const { dir } = roundTrip({ r: 2, alpha: 2, targetModules: ['q_proj'] });
    const loaded = loadAdapter(dir, new ToyCausalLM(cfg, 7), { trainable: true });
    expect(loaded.trainableParameters().length).toBe(4);
    expect(loaded.trainableParameters().every((t) => t.requiresGrad)).toBe(true);
  });
});

// adapter_config.json as PEFT writes it (its full field set, including fields this package ignores).
const peftConfigText = `{
  "alpha_pattern": {},
  "auto_mapping": null,
  "base_model_name_or_path": "meta-llama/Llama-2-7b-hf",
  "bias": "none",
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 16,
  "lora_dropout": 0.05,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "r": 4,
  "rank_pattern": {"v_proj": 2},
  "revision": null,
  "target_modules": ["v_proj", "q_proj"],
  "task_type": "CAUSAL_LM",
  "use_dora": false,
  "use_rslora": false
}
`;

/** A PEFT adapter directory for the toy model: q_proj at r 4, v_proj at r 2, float16 tensors. Returns its factors by layer. */
function writePeftAdapter(dir: string, configText = peftConfigText, edit?: (tensors: Map<string, Tensor>) => void): Map<string, [Float64Array, Float64Array, number]> {
  const factors = new Map<string, [Float64Array, Float64Array, number]>();
  const tensors = new Map<string, Tensor>();
  let seed = 1;
  for (let layer = 0; layer < 2; layer++) {
    for (const [proj, outF, r] of [['q_proj', 16, 4], ['v_proj', 8, 2]] as const) {
      const path = `model.layers.${layer}.self_attn.${proj}`;
      const a = tensor(randomValues(r * 16, seed++, -0.5, 0.5), { shape: [r, 16], dtype: 'float16' });
      const b = tensor(randomValues(outF * r, seed++, -0.5, 0.5), { shape: [outF, r], dtype: 'float16' });
      tensors.set(`base_model.model.${path}.lora_A.weight`, a);
      tensors.set(`base_model.model.${path}.lora_B.weight`, b);
      factors.set(path, [a.toFloat64Array(), b.toFloat64Array(), r]);
    }
  }
  edit?.(tensors);
  writeFileSync(join(dir, ADAPTER_CONFIG_NAME), configText);
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_NAME), tensors, { format: 'pt' });
  return factors;
}

describe('PEFT adapters load here', () => {
  it('a hand-written PEFT LoRA adapter (rank_pattern, float16) gives W + (α/r)·B·A', () => {
    const dir = freshDir();
    mkdirp(dir);
    const factors = writePeftAdapter(dir);
    const model = new ToyCausalLM(cfg, 3);
    const attached = loadAdapter(dir, model);
    expect([...attached.layers.keys()]).toEqual([...factors.keys()]);
    expect(attached.layers.get('model.layers.0.self_attn.v_proj')!.adapter.scaling).toBe(8);
    // Reference: the same base model with ΔW = (α / r) · B · A (loops) added to the weights.
    const reference = new ToyCausalLM(cfg, 3);
    for (const [path, [a, b, r]] of factors) {
      const layer = reference.namedModules().find(([n]) => n === path)![1] as Linear;
      const [outF, inF] = layer.weight.shape as [number, number];
      const ba = refProduct(b, a, outF, r, inF);
      const w = layer.weight.toFloat64Array().map((v, i) => v + (16 / r) * ba[i]!);
      assignInPlace(layer.weight, tensor(w, { shape: [outF, inF] }));
    }
    const got = logits(model);
    const want = logits(reference);
    const scale = Math.max(...want.map(Math.abs));
    expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]!))) / scale).toBeLessThan(1e-5);
  });
});

function mkdirp(dir: string): void {
  mkdirSync(dir, { recursive: true });
}

describe('adapter files that do not match the model', () => {
  const attachedNothing = (model: ToyCausalLM) => !model.namedModules().some(([, m]) => m instanceof AdaptedLinear);

  it('a tensor of the wrong shape names the tensor, the layer and both shapes, and leaves the model as it was', () => {
    const dir = freshDir();
    mkdirp(dir);
    writePeftAdapter(dir, peftConfigText.replace('"rank_pattern": {"v_proj": 2}', '"rank_pattern": {}'));
    const model = new ToyCausalLM(cfg, 3);
    expect(() => loadAdapter(dir, model)).toThrow(
      "'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight' has shape [2, 16] but layer 'model.layers.0.self_attn.v_proj' " +
      '(LoRA rank 4 (r 4, α 16, s 4)) expects [4, 16]');
    expect(attachedNothing(model)).toBe(true);
    expect(model.parameters().every((t) => t.requiresGrad)).toBe(true);
  });

  it('missing and unexpected tensors', () => {
    const dir = freshDir();
    mkdirp(dir);
    writePeftAdapter(dir, peftConfigText, (t) => {
      t.delete('base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight');
      t.set('base_model.model.model.layers.0.mlp.up_proj.lora_A.weight', tensor([1, 2], { dtype: 'float16' }));
    });
    expect(() => loadAdapter(dir, new ToyCausalLM(cfg, 3))).toThrow(
      "missing tensors 'base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight'; tensors for no adapted layer " +
      "'base_model.model.model.layers.0.mlp.up_proj.lora_A.weight'");
  });

  it('targets the model lacks, unsupported PEFT features, broken files', () => {
    const cases: [string, string][] = [
      [peftConfigText.replace('["v_proj", "q_proj"]', '["query_key_value"]'),
        "the adapter does not fit the model: attachAdapters: target 'query_key_value' matched no module of the model"],
      [peftConfigText.replace('"use_dora": false', '"use_dora": true'), 'use_dora = true asks for DoRA, which this package does not support'],
      [peftConfigText.replace('"peft_type": "LORA"', '"peft_type": "IA3"'), 'peft_type must be "LORA", got "IA3"'],
      [peftConfigText.replace('"bias": "none"', '"bias": "lora_only"'), 'bias = "lora_only" asks for trained biases'],
      [peftConfigText.replace('"r": 4', '"r": 4.5'), 'adapter config: r must be a positive integer, got 4.5'],
      ['{ "peft_type": "LORA", ', 'not valid JSON'],
    ];
    for (const [text, message] of cases) {
      const dir = freshDir();
      mkdirp(dir);
      writePeftAdapter(dir, text);
      expect(() => loadAdapter(dir, new ToyCausalLM(cfg, 3))).toThrow(message);
    }
    expect(() => loadAdapter(join(root, 'nowhere'), new ToyCausalLM(cfg, 3))).toThrow('nowhere: not an adapter directory');
  });
});

describe('atomic config writes', () => {
  it('replaces the file whole, and leaves neither a partial file nor a temporary one when the rename fails', () => {
    const dir = freshDir();
    mkdirp(dir);
    const path = join(dir, ADAPTER_CONFIG_NAME);
    writeFileAtomic(path, '{"r": 1}');
    writeFileAtomic(path, '{"r": 2}');
    expect(readFileSync(path, 'utf8')).toBe('{"r": 2}');
    mkdirp(join(dir, 'taken'));
    writeFileSync(join(dir, 'taken', 'x'), '');
    expect(() => writeFileAtomic(join(dir, 'taken'), 'data')).toThrow();
    expect(readdirSync(dir).sort()).toEqual([ADAPTER_CONFIG_NAME, 'taken']);
  });
});

// Attaching adapters by module-name patterns (PEFT's rules), freezing, parameter summaries,
// detaching, and the errors for patterns and factors that do not fit.
import { describe, expect, it } from 'vitest';
import { tensor, tidy, type Tensor } from '@blora/tensor';
import { randomValues } from '@blora/tensor/testing';
import { Linear, Module, noGrad } from '@blora/autograd';
import {
  AdaptedLinear, attachAdapters, DenseBase, formatParameterSummary, quantizeModel, QuantizedBase, summarizeParameters,
} from '../src/index.js';
import { randomizeAdapter, values } from './helpers.js';
import { blockLinearPaths, ToyCausalLM, type ToyConfig } from './toy-model.js';

const cfg: ToyConfig = { vocab: 13, dim: 16, heads: 2, kvHeads: 1, hidden: 32, layers: 2, context: 5 };
const input = () => tensor(Int32Array.from(randomValues(10, 3, 0, 13), Math.floor), { shape: [2, 5], dtype: 'int32' });
const logits = (m: ToyCausalLM, ids: Tensor) => noGrad(() => tidy(() => values(m.logits(ids))));

describe('attaching', () => {
  it('by default adapts every linear layer of every block but not lm_head, freezes the rest, keeps the outputs', () => {
    const model = new ToyCausalLM(cfg, 1);
    const ids = input();
    const before = logits(model, ids);
    const attached = attachAdapters(model, { method: 'qblora', lambda: 2, r: 4, alpha: 8 });
    expect([...attached.layers.keys()]).toEqual(blockLinearPaths(2));
    expect(attached.targetModules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    // The model's own fields now point at the adapted layers.
    expect(model.model.layers.items[0]!.self_attn.q_proj).toBe(attached.layers.get('model.layers.0.self_attn.q_proj'));
    expect(model.lm_head).toBeInstanceOf(Linear);
    const trainable = model.namedParameters().filter(([, t]) => t.requiresGrad).map(([n]) => n);
    expect(trainable).toEqual(blockLinearPaths(2).flatMap((p) => [`${p}.adapter.lora_A`, `${p}.adapter.lora_B`]));
    expect(attached.trainableParameters().length).toBe(trainable.length);
    expect(logits(model, ids)).toEqual(before); // B = 0: training starts at the base model
    attached.layers.forEach((l) => randomizeAdapter(l.adapter, 1));
    expect(logits(model, ids)).not.toEqual(before);
  });

  it('follows PEFT target_modules: names by suffix, a full-match regular expression, layers_to_transform, exclude_modules', () => {
    const pick = (config: Parameters<typeof attachAdapters>[1]) => [...attachAdapters(new ToyCausalLM(cfg, 1), config).layers.keys()];
    expect(pick({ targetModules: ['q_proj', 'v_proj'] })).toEqual([
      'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj',
    ]);
    expect(pick({ targetModules: String.raw`.*\.1\.mlp\.(up|down)_proj` })).toEqual(['model.layers.1.mlp.up_proj', 'model.layers.1.mlp.down_proj']);
    expect(pick({ targetModules: ['mlp.gate_proj'], layersToTransform: [1], layersPattern: 'layers' })).toEqual(['model.layers.1.mlp.gate_proj']);
    expect(pick({ targetModules: ['o_proj'], layersToTransform: 0 })).toEqual(['model.layers.0.self_attn.o_proj']);
    expect(pick({ targetModules: 'all-linear', excludeModules: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'mlp.gate_proj', 'mlp.up_proj'] }))
      .toEqual(['model.layers.0.self_attn.o_proj', 'model.layers.0.mlp.down_proj', 'model.layers.1.self_attn.o_proj', 'model.layers.1.mlp.down_proj']);
    expect(pick({ targetModules: ['lm_head'] })).toEqual(['lm_head']);
  });

  it('rank_pattern and alpha_pattern set r and α per layer (the factor rank follows r·λ)', () => {
    const attached = attachAdapters(new ToyCausalLM(cfg, 1), {
      method: 'qblora', lambda: 2, r: 2, alpha: 4, rankPattern: { down_proj: 4, 'layers.1.self_attn.q_proj': 1 }, alphaPattern: { 'q_.*': 3 },
    });
    const a = (p: string) => attached.layers.get(p)!.adapter;
    expect([a('model.layers.0.mlp.down_proj').r, a('model.layers.0.mlp.down_proj').rank, a('model.layers.0.mlp.down_proj').scaling]).toEqual([4, 8, 1]);
    expect([a('model.layers.1.self_attn.q_proj').r, a('model.layers.1.self_attn.q_proj').alpha]).toEqual([1, 3]);
    expect([a('model.layers.0.self_attn.q_proj').r, a('model.layers.0.self_attn.q_proj').alpha]).toEqual([2, 3]);
    expect([a('model.layers.0.mlp.up_proj').r, a('model.layers.0.mlp.up_proj').alpha]).toEqual([2, 4]);
  });

  it('records the full paths when the leaf names would select more than was adapted', () => {
    const attached = attachAdapters(new ToyCausalLM(cfg, 1), { targetModules: String.raw`model\.layers\.0\.mlp\.up_proj` });
    expect(attached.targetModules).toBe(String.raw`model\.layers\.0\.mlp\.up_proj`);
    const viaExclude = attachAdapters(new ToyCausalLM(cfg, 1), { excludeModules: String.raw`model\.layers\.1\..*` });
    expect(viaExclude.targetModules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  });

  it('detach puts the original layers back and restores which parameters trained', () => {
    const model = new ToyCausalLM(cfg, 2);
    const q = model.model.layers.items[0]!.self_attn.q_proj;
    const attached = attachAdapters(model, { r: 2, alpha: 2 });
    expect(model.model.embed_tokens.weight.requiresGrad).toBe(false);
    attached.detach();
    expect(model.model.layers.items[0]!.self_attn.q_proj).toBe(q);
    expect(model.parameters().every((t) => t.requiresGrad)).toBe(true);
    expect(() => attached.detach()).toThrow('detach: the adapters were already detached or merged');
  });
});

describe('parameter summary', () => {
  it('counts trainable adapter parameters per layer and in all; a 4-bit weight counts as out · in', () => {
    const model = new ToyCausalLM(cfg, 1);
    const dense = model.numParameters();
    quantizeModel(model, { format: 'nf4', blocksize: 32 });
    const attached = attachAdapters(model, { method: 'qblora', lambda: 2, r: 4, alpha: 8 });
    const summary = summarizeParameters(model);
    const sizes: Record<string, [number, number]> = {
      q_proj: [16, 16], k_proj: [8, 16], v_proj: [8, 16], o_proj: [16, 16], gate_proj: [32, 16], up_proj: [32, 16], down_proj: [16, 32],
    };
    let trainable = 0;
    for (const layer of summary.layers) {
      const [outF, inF] = sizes[layer.name.split('.').pop()!]!;
      expect(layer.trainableParameters).toBe(4 * (inF + outF)); // LoRA's count at rank 4
      expect(layer.baseParameters).toBe(outF * inF);
      expect(layer.adapterShapes).toEqual({ 'lora_A.weight': [8, inF / 2], 'lora_B.weight': [outF / 2, 8] });
      expect(layer.method).toBe('Q-BLoRA');
      expect(layer.base).toMatch(/^nf4 /);
      trainable += layer.trainableParameters;
    }
    expect(summary.layers.length).toBe(14);
    expect(summary.trainable).toBe(trainable);
    expect(summary.total).toBe(dense + trainable);
    expect(summary.trainablePercent).toBeCloseTo((100 * trainable) / (dense + trainable), 10);
    const text = formatParameterSummary(summary);
    expect(text).toContain(`trainable params: ${trainable} || all params: ${dense + trainable} || trainable%: `);
    expect(text.split('\n')[1]).toMatch(/^model\.layers\.0\.self_attn\.q_proj\s+Q-BLoRA λin 2, λout 2, rank 8 \(r 4, α 8, s 2\)\s+\[8, 8\] \[8, 8\]\s+128\s+256\s+nf4/);
    attached.setTrainable(false);
    expect(summarizeParameters(model).trainable).toBe(0);
  });
});

describe('bad input', () => {
  it('targets that match nothing name the pattern and the linear layers', () => {
    expect(() => attachAdapters(new ToyCausalLM(cfg, 1), { targetModules: ['q_proj', 'qkv_proj'] })).toThrow(
      "attachAdapters: target 'qkv_proj' matched no module of the model (its linear layers: model.layers.0.self_attn.q_proj, " +
      'model.layers.0.self_attn.k_proj');
    expect(() => attachAdapters(new ToyCausalLM(cfg, 1), { targetModules: 'attn\\.q' })).toThrow("target 'attn\\.q' matched no module");
    expect(() => attachAdapters(new ToyCausalLM(cfg, 1), { targetModules: ['q_proj'], layersToTransform: [7] }))
      .toThrow('attachAdapters: no layer selected');
    expect(() => attachAdapters(new ToyCausalLM(cfg, 1), { targetModules: ['self_attn'] }))
      .toThrow("module 'model.layers.0.self_attn' matches target 'self_attn' but is a Attention, not a linear layer");
  });

  it('a λ that does not divide a layer leaves the model untouched', () => {
    const model = new ToyCausalLM(cfg, 1);
    const flags = model.parameters().map((t) => t.requiresGrad);
    expect(() => attachAdapters(model, { method: 'qblora', lambdaIn: 4, lambdaOut: 3 }))
      .toThrow("Q-BLoRA on layer 'model.layers.0.self_attn.q_proj': λout = 3 does not divide out_features = 16");
    expect(model.namedModules().some(([, m]) => m instanceof AdaptedLinear || m instanceof DenseBase)).toBe(false);
    expect(model.parameters().map((t) => t.requiresGrad)).toEqual(flags);
  });

  it('QA-BLoRA checks the base: offsets required, blocks inside the λ2 x λ1 tiles', () => {
    const nf4 = new ToyCausalLM(cfg, 1);
    quantizeModel(nf4, { format: 'nf4', blocksize: 32 });
    expect(() => attachAdapters(nf4, { method: 'qablora', lambdaIn: 4, lambdaOut: 8 })).toThrow(
      "QA-BLoRA on layer 'model.layers.0.self_attn.q_proj': the base is nf4 (absmax blocks, no offset), which cannot absorb the adapter's update");
    const int4 = new ToyCausalLM(cfg, 1);
    quantizeModel(int4, { format: 'int4', groupSize: 8 });
    expect(() => attachAdapters(int4, { method: 'qablora', lambdaIn: 4, lambdaOut: 8 })).toThrow(
      "QA-BLoRA on layer 'model.layers.0.self_attn.q_proj': quantization blocks of 1 x 8 (rows x cols) do not lie inside the adapter's " +
      'tiles of λ2 x λ1 = 8 x 4: block columns 8 do not divide λ1 = 4');
    const ok = attachAdapters(int4, { method: 'qablora', lambdaIn: 8, lambdaOut: 8 });
    expect(ok.layers.get('model.layers.0.mlp.down_proj')!.base).toBeInstanceOf(QuantizedBase);
  });

  it('contradictory or invalid configs', () => {
    const model = new ToyCausalLM(cfg, 1);
    expect(() => attachAdapters(model, { method: 'lora', lambda: 2 })).toThrow("LoRA has no balancing factor (got lambda 2); use method 'qblora'");
    expect(() => attachAdapters(model, { method: 'qblora', form: 'matrix' })).toThrow("the single matrix (form 'matrix') is QA-BLoRA's");
    expect(() => attachAdapters(model, { method: 'qblora', lambda: 2, lambdaIn: 4 })).toThrow('lambda = 2 contradicts lambdaIn = 4');
    expect(() => attachAdapters(model, { r: 0 })).toThrow('adapter config: r must be a positive integer, got 0');
    attachAdapters(model, { targetModules: ['q_proj'] });
    expect(() => attachAdapters(model, { targetModules: ['q_proj'] })).toThrow('model.layers.0.self_attn.q_proj, model.layers.1.self_attn.q_proj already carry adapters');
  });
});

describe('Module.replaceModule', () => {
  class Holder extends Module {
    readonly a: Linear;
    readonly list: Linear[];
    constructor() {
      super();
      this.a = this.registerModule('a', new Linear(2, 2));
      this.list = [this.a];
    }
  }
  it('swaps the child, keeps its place, and repoints fields and array entries', () => {
    const h = new Holder();
    const old = h.a;
    const next = new Linear(2, 2);
    expect(h.replaceModule('a', next)).toBe(old);
    expect(h.a).toBe(next);
    expect(h.list[0]).toBe(next);
    expect(h.namedChildren()).toEqual([['a', next]]);
    expect(() => h.replaceModule('b', next)).toThrow("Holder.replaceModule: no child module named 'b'");
  });
});

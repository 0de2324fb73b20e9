// Loading and saving Hugging Face checkpoint directories: round trips, stored dtypes, shards,
// tied embeddings, and errors that name the tensor and the file.
import { existsSync, readFileSync, readdirSync, truncateSync, statSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsReader, tensor, writeSafetensors, type Tensor } from '@blora/tensor';
import { assertClose } from '@blora/tensor/testing';
import {
  CheckpointError, createLlama, loadLlama, parseLlamaConfig, saveLlama, shardFileName, type LlamaForCausalLM,
} from '../src/index.js';
import {
  randomWeights, refConfig, referenceLogits, roundedToFloat32, tempDir, tinyGemmaJson, tinyLlamaJson, tinyMistralJson,
  weightTensors, writeCheckpoint, type RefWeights,
} from './llama-fixtures.js';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

function dirFor(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

function stateValues(model: LlamaForCausalLM): Map<string, { dtype: string; values: Float64Array }> {
  return new Map(model.namedParameters().map(([n, p]) => [n, { dtype: p.dtype, values: p.toFloat64Array() }]));
}

const INPUT = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]];

describe('save -> load', () => {
  for (const [name, json] of [['Llama', tinyLlamaJson()], ['Mistral', tinyMistralJson()], ['Gemma (tied)', tinyGemmaJson()]] as const) {
    it(`${name}: round trip is bit-exact and transformers' layout`, () => {
      const model = createLlama(parseLlamaConfig(json), { seed: 5 });
      const dir = dirFor();
      const files = saveLlama(model, dir);
      expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['model.safetensors', 'config.json']);
      const reader = SafetensorsReader.open(join(dir, 'model.safetensors'));
      expect(reader.metadata).toEqual({ format: 'pt' });
      expect(reader.has('lm_head.weight')).toBe(!parseLlamaConfig(json).tieWordEmbeddings);
      expect(reader.entries.get('model.layers.1.self_attn.k_proj.weight')!.dtype).toBe('F32');
      reader.close();
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config.torch_dtype).toBe('float32');
      expect(config.architectures).toEqual(json.architectures);
      for (const key of Object.keys(json)) expect(config).toHaveProperty(key);
      const loaded = loadLlama(dir);
      expect(stateValues(loaded)).toEqual(stateValues(model));
      expect(loaded.forward(INPUT).toFloat64Array()).toEqual(model.forward(INPUT).toFloat64Array());
    });
  }

  it('bfloat16 and float16 storage: saved values are the rounded weights, reloaded exactly', () => {
    const model = createLlama(parseLlamaConfig(tinyLlamaJson()), { seed: 9 });
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const dir = dirFor();
      saveLlama(model, dir, { dtype });
      const reader = SafetensorsReader.open(join(dir, 'model.safetensors'));
      expect(reader.entries.get('model.embed_tokens.weight')!.dtype).toBe(dtype === 'bfloat16' ? 'BF16' : 'F16');
      reader.close();
      expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype).toBe(dtype);
      const loaded = loadLlama(dir);
      for (const [name, p] of model.namedParameters()) {
        const rounded = tensor(p.toFloat64Array(), { shape: p.shape, dtype }).toFloat64Array();
        expect(loaded.namedParameters().find(([n]) => n === name)![1].toFloat64Array(), name).toEqual(rounded);
      }
      // Compute dtype bfloat16: parameters stay as stored, the forward runs.
      const half = loadLlama(dir, { dtype });
      expect(half.model.embed_tokens.weight.dtype).toBe(dtype);
      expect(half.forward(INPUT).dtype).toBe(dtype);
    }
  });

  it('loads bfloat16 checkpoints into float32 against the reference on the rounded weights', () => {
    const json = tinyMistralJson();
    const c = refConfig(json);
    const weights = randomWeights(c, 77);
    const dir = dirFor();
    writeCheckpoint(dir, json, weights, 'bfloat16');
    const stored: RefWeights = new Map([...weightTensors(weights, 'bfloat16')].map(([n, t]) => [n, { values: t.toFloat64Array(), shape: [...t.shape] }]));
    assertClose(loadLlama(dir, { dtype: 'float64' }).forward(INPUT.map((r) => r.map((x) => x % c.vocab))),
      referenceLogits(c, stored, INPUT.map((r) => r.map((x) => x % c.vocab))).flat(2), { rtol: 1e-9, atol: 1e-9 });
  });

  it('shards above maxShardSize, with an index transformers reads, and loads them back', () => {
    const model = createLlama(parseLlamaConfig(tinyLlamaJson()), { seed: 3 });
    const dir = dirFor();
    // A single-file save first: the sharded save must remove it, or it would shadow the shards.
    saveLlama(model, dir);
    const files = saveLlama(model, dir, { maxShardSize: 3000 });
    const names = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
    expect(names.length).toBeGreaterThan(2);
    expect(names).toEqual(Array.from({ length: names.length }, (_, i) => shardFileName(i, names.length)));
    expect(names[0]).toBe(`model-00001-of-${String(names.length).padStart(5, '0')}.safetensors`);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    expect(files).toContain(join(dir, 'model.safetensors.index.json'));
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
      metadata: { total_size: number }; weight_map: Record<string, string>;
    };
    const expectedBytes = model.parameters().reduce((a, p) => a + p.numel * 4, 0);
    expect(index.metadata.total_size).toBe(expectedBytes);
    expect(Object.keys(index.weight_map).sort()).toEqual(model.namedParameters().map(([n]) => n).sort());
    for (const shard of names) {
      const size = statSync(join(dir, shard)).size;
      const r = SafetensorsReader.open(join(dir, shard));
      for (const n of r.names()) expect(index.weight_map[n]).toBe(shard);
      const data = [...r.entries.values()].reduce((a, e) => a + e.end - e.begin, 0);
      // A shard exceeds the limit only when one tensor alone does.
      expect(data <= 3000 || r.names().length === 1).toBe(true);
      expect(size).toBeGreaterThan(data);
      r.close();
    }
    const loaded = loadLlama(dir);
    expect(stateValues(loaded)).toEqual(stateValues(model));
    // Saving unsharded again removes the shards and the index.
    saveLlama(model, dir);
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
  });

  it('tied models: lm_head is the embedding table, and a stored lm_head.weight is ignored', () => {
    const json = tinyLlamaJson({ tie_word_embeddings: true });
    const c = refConfig(json);
    const weights = roundedToFloat32(randomWeights(c, 15));
    const dir = dirFor();
    const withHead = weightTensors(weights);
    withHead.set('lm_head.weight', tensor(new Float64Array(c.vocab * c.hidden).fill(7), { shape: [c.vocab, c.hidden] }));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
    writeSafetensors(join(dir, 'model.safetensors'), withHead);
    const model = loadLlama(dir, { dtype: 'float64' });
    expect(model.lm_head).toBeNull();
    assertClose(model.forward([[1, 2, 3]]), referenceLogits(c, weights, [[1, 2, 3]]).flat(2), { rtol: 1e-9, atol: 1e-9 });
  });

  it('ignores rotary_emb.inv_freq buffers of older conversions', () => {
    const json = tinyLlamaJson();
    const weights = roundedToFloat32(randomWeights(refConfig(json), 16));
    const dir = dirFor();
    const tensors = weightTensors(weights);
    tensors.set('model.layers.0.self_attn.rotary_emb.inv_freq', tensor([1, 0.01], { dtype: 'float32' }));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    expect(loadLlama(dir).forward([[1, 2]]).shape).toEqual([1, 2, 37]);
  });
});

describe('load errors name the tensor and the file', () => {
  const json = tinyLlamaJson();
  const weights = roundedToFloat32(randomWeights(refConfig(json), 99));

  function checkpointWith(edit: (tensors: Map<string, Tensor>) => void): string {
    const dir = dirFor();
    const tensors = weightTensors(weights);
    edit(tensors);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    return dir;
  }

  it('missing tensors', () => {
    const dir = checkpointWith((t) => {
      t.delete('model.layers.1.mlp.up_proj.weight');
      t.delete('model.norm.weight');
    });
    expect(() => loadLlama(dir)).toThrow(CheckpointError);
    expect(() => loadLlama(dir)).toThrow(/missing tensors 'model\.layers\.1\.mlp\.up_proj\.weight', 'model\.norm\.weight'/);
    const noHead = checkpointWith((t) => t.delete('lm_head.weight'));
    expect(() => loadLlama(noHead)).toThrow(/missing tensors 'lm_head\.weight' \(config\.json has tie_word_embeddings false\)/);
  });

  it('extra tensors', () => {
    const dir = checkpointWith((t) => t.set('model.layers.2.mlp.up_proj.weight', tensor([1], { dtype: 'float32' })));
    expect(() => loadLlama(dir)).toThrow(/unexpected tensors 'model\.layers\.2\.mlp\.up_proj\.weight' \(in .*model\.safetensors\) that a LlamaForCausalLM with 2 layers does not have/);
  });

  it('shape mismatches', () => {
    const dir = checkpointWith((t) => t.set('model.layers.0.self_attn.k_proj.weight', tensor(new Float32Array(16 * 16), { shape: [16, 16] })));
    expect(() => loadLlama(dir)).toThrow(/model\.safetensors: tensor 'model\.layers\.0\.self_attn\.k_proj\.weight' has shape \[16, 16\], but config\.json implies \[8, 16\]/);
  });

  it('non-float dtypes', () => {
    const dir = checkpointWith((t) => t.set('model.norm.weight', tensor(new Int32Array(16), { dtype: 'int32' })));
    expect(() => loadLlama(dir)).toThrow(/tensor 'model\.norm\.weight' has dtype I32; expected one of F32, F16, BF16, F64/);
  });

  it('truncated files', () => {
    const dir = checkpointWith(() => undefined);
    const file = join(dir, 'model.safetensors');
    truncateSync(file, statSync(file).size - 10);
    expect(() => loadLlama(dir)).toThrow(new RegExp(`safetensors ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  });

  it('no weights, no config', () => {
    const dir = dirFor();
    writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
    expect(() => loadLlama(dir)).toThrow(/no model\.safetensors or model\.safetensors\.index\.json found/);
    expect(() => loadLlama(dirFor())).toThrow(/config\.json: cannot read/);
  });

  it('broken shard indexes', () => {
    const model = createLlama(parseLlamaConfig(json), { seed: 1 });
    const dir = dirFor();
    saveLlama(model, dir, { maxShardSize: 3000 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    const shard = index.weight_map['model.norm.weight']!;
    // The index names a tensor the shard lacks.
    writeFileSync(indexPath, JSON.stringify({ weight_map: { ...index.weight_map, 'model.extra.weight': shard } }));
    expect(() => loadLlama(dir)).toThrow(new RegExp(`${shard}: tensor 'model\\.extra\\.weight' is listed in .*index\\.json but missing from this shard`));
    // The shard holds a tensor the index does not list for it.
    const { ['model.norm.weight']: _dropped, ...rest } = index.weight_map;
    writeFileSync(indexPath, JSON.stringify({ weight_map: rest }));
    expect(() => loadLlama(dir)).toThrow(new RegExp(`${shard}: tensor 'model\\.norm\\.weight' is not listed for this file`));
    // A shard file is missing.
    writeFileSync(indexPath, JSON.stringify(index));
    unlinkSync(join(dir, shard));
    expect(() => loadLlama(dir)).toThrow(new RegExp(`index\\.json: shard ${shard} \\(holding '.*'\\) does not exist`));
    writeFileSync(indexPath, '{"weights": {}}');
    expect(() => loadLlama(dir)).toThrow(/expected an object with a 'weight_map'/);
  });

  it('saving refuses non-float dtypes and bad shard sizes', () => {
    const model = createLlama(parseLlamaConfig(json));
    expect(() => saveLlama(model, dirFor(), { dtype: 'int32' })).toThrow(/dtype must be a float dtype, got int32/);
    expect(() => saveLlama(model, dirFor(), { maxShardSize: 0 })).toThrow(/maxShardSize must be positive/);
  });
});

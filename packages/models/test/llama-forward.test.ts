// The forward pass of each family against an independent float64 reference, KV-cached
// forward passes, the loss, and activation checkpointing.
import { afterAll, describe, expect, it } from 'vitest';
import { tensor, tidy, type Tensor } from '@blora/tensor';
import { assertClose } from '@blora/tensor/testing';
import {
  KVCache, loadLlama, parseLlamaConfig, type LlamaForCausalLM,
} from '../src/index.js';
import {
  randomWeights, refConfig, referenceLogits, referenceLoss, roundedToFloat32, tempDir, tinyGemmaJson, tinyLlama1Json,
  tinyLlama2Json, tinyLlamaJson, tinyMistralJson, writeCheckpoint, type RefWeights,
} from './llama-fixtures.js';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

interface Family {
  name: string;
  json: Record<string, unknown>;
}

const FAMILIES: Family[] = [
  { name: 'TinyLlama (GQA)', json: tinyLlamaJson() },
  { name: 'Llama-2 (no rope_theta, MHA)', json: tinyLlama2Json() },
  { name: 'LLaMA-1 (no num_key_value_heads, odd head count)', json: tinyLlama1Json() },
  { name: 'Mistral (window 3 < T)', json: tinyMistralJson() },
  { name: 'Gemma (GeGLU, 1 + w, scaled tied embeddings, head_dim 6)', json: tinyGemmaJson() },
  { name: 'Llama with tied embeddings and rope_theta 500000', json: tinyLlamaJson({ tie_word_embeddings: true, rope_theta: 500000.0 }) },
];

/** Writes a checkpoint of `json` with seeded float32 weights; returns the dir and the stored weights. */
function checkpoint(json: Record<string, unknown>, seed: number): { dir: string; weights: RefWeights } {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const weights = roundedToFloat32(randomWeights(refConfig(json), seed));
  writeCheckpoint(dir, json, weights);
  return { dir, weights };
}

function ids(vocab: number, b: number, t: number, seed: number): number[][] {
  return Array.from({ length: b }, (_, i) => Array.from({ length: t }, (_, j) => (seed * 7 + i * 13 + j * 5 + ((i * j) % 3)) % vocab));
}

function flat(x: number[][][]): number[] {
  return x.flat(2);
}

describe('forward against the float64 reference', () => {
  FAMILIES.forEach((family, n) => {
    it(`${family.name}: float64 and float32 compute`, () => {
      const { dir, weights } = checkpoint(family.json, 100 + n * 50);
      const c = refConfig(family.json);
      const input = ids(c.vocab, 2, 5, n + 1);
      const expected = flat(referenceLogits(c, weights, input));
      const m64 = loadLlama(dir, { dtype: 'float64' });
      const logits64 = m64.forward(input);
      expect(logits64.shape).toEqual([2, 5, c.vocab]);
      expect(logits64.dtype).toBe('float64');
      assertClose(logits64, expected, { rtol: 1e-9, atol: 1e-9 });
      const m32 = loadLlama(dir);
      const logits32 = m32.forward(tensor(Int32Array.from(input.flat()), { shape: [2, 5], dtype: 'int32' }));
      expect(logits32.dtype).toBe('float32');
      assertClose(logits32, expected, { rtol: 1e-4, atol: 1e-4 });
    });
  });

  it('a window smaller than T changes the result (the mask is really applied)', () => {
    const json = tinyMistralJson();
    const { dir, weights } = checkpoint(json, 7);
    const input = ids(31, 1, 6, 3);
    const windowed = flat(referenceLogits(refConfig(json), weights, input));
    const full = flat(referenceLogits({ ...refConfig(json), window: null }, weights, input));
    const got = loadLlama(dir, { dtype: 'float64' }).forward(input).toFloat64Array();
    assertClose(got, windowed, { rtol: 1e-9, atol: 1e-9 });
    // Positions inside the window agree with full attention, later ones do not.
    const v = 31;
    assertClose(got.slice(0, 3 * v), full.slice(0, 3 * v), { rtol: 1e-9, atol: 1e-9 });
    expect(Math.max(...got.slice(3 * v).map((x, i) => Math.abs(x - full[3 * v + i]!)))).toBeGreaterThan(1e-3);
  });

  it('positionOffset shifts the rotary positions', () => {
    const json = tinyLlamaJson();
    const { dir, weights } = checkpoint(json, 11);
    const input = ids(37, 1, 4, 2);
    const model = loadLlama(dir, { dtype: 'float64' });
    assertClose(model.forward(input, { positionOffset: 9 }), flat(referenceLogits(refConfig(json), weights, input, 9)), { rtol: 1e-9, atol: 1e-9 });
  });
});

describe('KV cache', () => {
  function cachedInChunks(model: LlamaForCausalLM, input: number[][], chunks: number[]): Float64Array {
    const cache = new KVCache(model.config.numHiddenLayers);
    const parts: Float64Array[] = [];
    let at = 0;
    for (const size of chunks) {
      const piece = input.map((r) => r.slice(at, at + size));
      expect(cache.length).toBe(at);
      parts.push(tidy(() => model.forward(piece, { kvCache: cache })).toFloat64Array());
      at += size;
    }
    expect(cache.length).toBe(at);
    cache.dispose();
    expect(cache.length).toBe(0);
    // Interleave per batch row: parts are [B, size, V] each.
    const [b, v] = [input.length, model.config.vocabSize];
    const out = new Float64Array(b * at * v);
    let t0 = 0;
    chunks.forEach((size, k) => {
      for (let i = 0; i < b; i++) out.set(parts[k]!.subarray(i * size * v, (i + 1) * size * v), (i * at + t0) * v);
      t0 += size;
    });
    return out;
  }

  for (const [name, json] of [['Llama', tinyLlamaJson()], ['Mistral window 3', tinyMistralJson()], ['Gemma', tinyGemmaJson()]] as const) {
    it(`${name}: chunked passes through a cache equal one full pass`, () => {
      const { dir } = checkpoint(json, 21);
      const model = loadLlama(dir, { dtype: 'float64' });
      const input = ids(model.config.vocabSize, 2, 7, 5);
      const full = model.forward(input).toFloat64Array();
      assertClose(cachedInChunks(model, input, [3, 1, 1, 2]), full, { rtol: 1e-10, atol: 1e-10 });
      assertClose(cachedInChunks(model, input, [1, 1, 1, 1, 1, 1, 1]), full, { rtol: 1e-10, atol: 1e-10 });
    });
  }

  it('rejects a position offset that does not continue the cache, and a cache of another depth', () => {
    const { dir } = checkpoint(tinyLlamaJson(), 3);
    const model = loadLlama(dir);
    const cache = new KVCache(2);
    model.forward([[1, 2, 3]], { kvCache: cache });
    expect(() => model.forward([[4]], { kvCache: cache, positionOffset: 0 })).toThrow(/positionOffset 0 does not continue the KV cache, which holds 3/);
    expect(() => model.forward([[4]], { kvCache: new KVCache(3) })).toThrow(/KV cache has 3 layers, the model 2/);
    cache.dispose();
  });
});

describe('loss', () => {
  it('equals the reference shifted cross-entropy, skipping -100 labels', () => {
    const json = tinyGemmaJson();
    const { dir, weights } = checkpoint(json, 31);
    const model = loadLlama(dir, { dtype: 'float64' });
    const input = ids(41, 2, 5, 4);
    const labels = input.map((r, i) => r.map((id, j) => (i === 1 && j < 3 ? -100 : id)));
    const expected = referenceLoss(referenceLogits(refConfig(json), weights, input), labels);
    expect(model.loss(input, labels).item()).toBeCloseTo(expected, 10);
    const noLabels = referenceLoss(referenceLogits(refConfig(json), weights, input), input);
    expect(model.loss(input).item()).toBeCloseTo(noLabels, 10);
  });

  it('checks its inputs', () => {
    const { dir } = checkpoint(tinyLlamaJson(), 5);
    const model = loadLlama(dir);
    expect(() => model.loss([[1]])).toThrow(/at least 2 tokens/);
    expect(() => model.loss([[1, 2]], [[1, 2, 3]])).toThrow(/labels .* must have the shape of ids \[1, 2\]/);
    expect(() => model.forward([[1, 2], [3]])).toThrow(/same, non-zero length/);
    expect(() => model.forward([[1, -3]])).toThrow(/token id -3 at \[0, 1\]/);
    expect(() => model.forward([[1, 99]])).toThrow(/99/);
    expect(() => model.forward(tensor([1, 2], { dtype: 'int32' }))).toThrow(/int32 tensor \[B, T\]/);
  });
});

describe('activation checkpointing', () => {
  it('gives the same loss and gradients as a plain backward pass', () => {
    const json = tinyMistralJson();
    const { dir } = checkpoint(json, 41);
    const input = ids(31, 2, 5, 6);
    const grads = (checkpointing: boolean): [number, Map<string, Float64Array>] => {
      const model = loadLlama(dir, { dtype: 'float64' });
      model.gradientCheckpointing = checkpointing;
      const loss = tidy(() => {
        const l = model.loss(input);
        l.backward();
        return l.item();
      });
      return [loss, new Map(model.namedParameters().map(([n, p]) => [n, (p.grad as Tensor).toFloat64Array()]))];
    };
    const [lossPlain, plain] = grads(false);
    const [lossCkpt, ckpt] = grads(true);
    expect(lossCkpt).toBeCloseTo(lossPlain, 12);
    expect([...ckpt.keys()]).toEqual([...plain.keys()]);
    for (const [name, g] of plain) {
      expect(g.some((x) => x !== 0), name).toBe(true);
      assertClose(ckpt.get(name)!, g, { rtol: 1e-10, atol: 1e-12 });
    }
  });
});

describe('module tree', () => {
  it('uses the Hugging Face names and parameter order', () => {
    const { dir } = checkpoint(tinyLlamaJson(), 51);
    const model = loadLlama(dir);
    const names = model.namedParameters().map(([n]) => n);
    expect(names.slice(0, 10)).toEqual([
      'model.embed_tokens.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.v_proj.weight',
      'model.layers.0.self_attn.o_proj.weight',
      'model.layers.0.mlp.gate_proj.weight',
      'model.layers.0.mlp.up_proj.weight',
      'model.layers.0.mlp.down_proj.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.post_attention_layernorm.weight',
    ]);
    expect(names.slice(-2)).toEqual(['model.norm.weight', 'lm_head.weight']);
    expect(names).toHaveLength(1 + 2 * 9 + 2);
    expect(model.linearLayers().map(([n]) => n).slice(0, 7)).toEqual([
      'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.k_proj', 'model.layers.0.self_attn.v_proj',
      'model.layers.0.self_attn.o_proj', 'model.layers.0.mlp.gate_proj', 'model.layers.0.mlp.up_proj', 'model.layers.0.mlp.down_proj',
    ]);
    const gemma = parseLlamaConfig(tinyGemmaJson());
    expect(gemma.tieWordEmbeddings).toBe(true);
  });
});

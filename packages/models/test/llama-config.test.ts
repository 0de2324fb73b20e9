// config.json parsing: defaults per architecture, the fields of real checkpoints, RoPE
// scaling, the JSON written back, and errors that name the field.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  LlamaConfigError, llamaConfig, llamaConfigToJson, parseLlamaConfig, readLlamaConfig, ropeInverseFrequencies,
} from '../src/index.js';
import { tempDir, tinyGemmaJson, tinyLlama1Json, tinyLlama2Json, tinyLlamaJson, tinyMistralJson } from './llama-fixtures.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('parseLlamaConfig', () => {
  it('reads a TinyLlama-shaped config', () => {
    const c = parseLlamaConfig(tinyLlamaJson());
    expect(c).toMatchObject({
      architecture: 'LlamaForCausalLM', family: 'llama', vocabSize: 37, hiddenSize: 16, intermediateSize: 24,
      numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 4, rmsNormEps: 1e-5, ropeTheta: 10000,
      ropeScaling: null, maxPositionEmbeddings: 2048, slidingWindow: null, hiddenAct: 'silu', tieWordEmbeddings: false,
      bosTokenId: 1, eosTokenIds: [2], padTokenId: null, torchDType: 'bfloat16',
    });
    expect(c.raw.transformers_version).toBe('4.35.0');
  });

  it('fills in the defaults of each config class', () => {
    const llama2 = parseLlamaConfig(tinyLlama2Json());
    expect(llama2.ropeTheta).toBe(10000);
    const llama1 = parseLlamaConfig(tinyLlama1Json());
    expect(llama1.numKeyValueHeads).toBe(3);
    expect(llama1.headDim).toBe(4);
    expect(llama1.padTokenId).toBe(0);
    const mistral = parseLlamaConfig(tinyMistralJson());
    expect(mistral.slidingWindow).toBe(3);
    const { sliding_window: _dropped, ...noWindow } = tinyMistralJson();
    expect(parseLlamaConfig(noWindow).slidingWindow).toBe(4096);
    expect(parseLlamaConfig(tinyMistralJson({ sliding_window: null })).slidingWindow).toBeNull();
    // A sliding_window field means nothing to a Llama.
    expect(parseLlamaConfig(tinyLlamaJson({ sliding_window: 3 })).slidingWindow).toBeNull();
    const gemma = parseLlamaConfig(tinyGemmaJson());
    expect(gemma).toMatchObject({ family: 'gemma', headDim: 6, numKeyValueHeads: 1, tieWordEmbeddings: true, hiddenAct: 'gelu_tanh', bosTokenId: 2, eosTokenIds: [1] });
    expect(parseLlamaConfig(tinyGemmaJson({ hidden_activation: 'gelu' })).hiddenAct).toBe('gelu');
    expect(parseLlamaConfig(tinyLlamaJson({ eos_token_id: [128001, 128009] })).eosTokenIds).toEqual([128001, 128009]);
  });

  it('reads linear and llama3 RoPE scaling', () => {
    const linear = parseLlamaConfig(tinyLlamaJson({ rope_scaling: { type: 'linear', factor: 4 } }));
    expect(linear.ropeScaling).toEqual({ type: 'linear', factor: 4 });
    const base = ropeInverseFrequencies({ headDim: 4, ropeTheta: 10000, ropeScaling: null });
    expect([...ropeInverseFrequencies(linear)]).toEqual([...base].map((f) => f / 4));
    const scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    const l3 = parseLlamaConfig(tinyLlamaJson({ hidden_size: 64, num_attention_heads: 2, num_key_value_heads: 1, rope_theta: 500000, rope_scaling: scaling }));
    const freqs = ropeInverseFrequencies(l3);
    // Independent computation: wavelengths above 64 are divided by 8, below 16 kept, blended between.
    for (let i = 0; i < 16; i++) {
      const f = Math.pow(500000, -i / 16);
      const wavelen = (2 * Math.PI) / f;
      let expected = f;
      if (wavelen > 64) expected = f / 8;
      else if (wavelen >= 16) {
        const smooth = (64 / wavelen - 1) / 3;
        expected = (1 - smooth) * f / 8 + smooth * f;
      }
      expect(freqs[i]).toBeCloseTo(expected, 15);
    }
    expect(freqs[0]).toBe(1);
    expect(freqs[15]).toBeCloseTo(Math.pow(500000, -15 / 16) / 8, 18);
  });

  it('writes back a config.json that parses to the same config and keeps unknown fields', () => {
    for (const json of [tinyLlamaJson(), tinyLlama2Json(), tinyLlama1Json(), tinyMistralJson(), tinyGemmaJson()]) {
      const c = parseLlamaConfig(json);
      const back = llamaConfigToJson(c, 'float32');
      expect(back.torch_dtype).toBe('float32');
      const again = parseLlamaConfig(back);
      const { raw: _a, torchDType: _b, ...rest } = c;
      const { raw: _c, torchDType: _d, ...restAgain } = again;
      expect(restAgain).toEqual(rest);
      for (const key of Object.keys(json)) expect(back).toHaveProperty(key);
    }
    expect(llamaConfigToJson(parseLlamaConfig(tinyLlama2Json()))._name_or_path).toBe('meta-llama/Llama-2-7b-hf');
  });

  it('builds configs from camel-cased fields', () => {
    const c = llamaConfig({ architecture: 'MistralForCausalLM', vocabSize: 10, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 1, numAttentionHeads: 2, slidingWindow: 2 });
    expect(c).toMatchObject({ family: 'mistral', numKeyValueHeads: 2, headDim: 4, slidingWindow: 2, tieWordEmbeddings: false });
    expect(() => llamaConfig({ vocabSize: 10, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 1, numAttentionHeads: 3 })).toThrow(/head_dim/);
  });

  describe('errors name the field', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['unsupported architecture', tinyLlamaJson({ architectures: ['Qwen2ForCausalLM'] }),
        /field 'architectures' names \["Qwen2ForCausalLM"\], which is not supported; supported architectures: LlamaForCausalLM, MistralForCausalLM, GemmaForCausalLM/],
      ['missing architectures', tinyLlamaJson({ architectures: undefined }), /field 'architectures' is missing/],
      ['architectures not a list', tinyLlamaJson({ architectures: 'LlamaForCausalLM' }), /field 'architectures' must be a non-empty list/],
      ['model_type mismatch', tinyLlamaJson({ model_type: 'gemma' }), /field 'model_type' is "gemma", but architecture LlamaForCausalLM has model_type "llama"/],
      ['missing hidden_size', tinyLlamaJson({ hidden_size: undefined }), /field 'hidden_size' is missing/],
      ['missing vocab_size', tinyLlamaJson({ vocab_size: undefined }), /field 'vocab_size' is missing/],
      ['non-integer layers', tinyLlamaJson({ num_hidden_layers: 2.5 }), /field 'num_hidden_layers' must be a positive integer, got 2.5/],
      ['string size', tinyLlamaJson({ intermediate_size: '24' }), /field 'intermediate_size' must be a positive integer, got "24"/],
      ['kv heads not dividing', tinyLlamaJson({ num_key_value_heads: 3 }), /field 'num_key_value_heads' \(3\) must divide num_attention_heads \(4\)/],
      ['hidden not divisible by heads', tinyLlamaJson({ num_attention_heads: 3, num_key_value_heads: 1 }), /field 'hidden_size' \(16\) must be a multiple of num_attention_heads \(3\)/],
      ['odd head_dim', tinyGemmaJson({ head_dim: 5 }), /field 'head_dim' must be even/],
      ['negative eps', tinyLlamaJson({ rms_norm_eps: -1 }), /field 'rms_norm_eps' must be a positive number, got -1/],
      ['bad theta', tinyLlamaJson({ rope_theta: 'big' }), /field 'rope_theta' must be a positive number/],
      ['unsupported rope scaling', tinyLlamaJson({ rope_scaling: { type: 'yarn', factor: 4 } }), /field 'rope_scaling' has rope type "yarn", which is not supported/],
      ['rope scaling without factor', tinyLlamaJson({ rope_scaling: { type: 'linear' } }), /field 'rope_scaling' needs a positive number 'factor'/],
      ['unsupported activation', tinyLlamaJson({ hidden_act: 'relu' }), /field 'hidden_act' names an unsupported activation "relu"/],
      ['gemma activation', tinyGemmaJson({ hidden_activation: 'quick_gelu' }), /field 'hidden_activation' names an unsupported activation/],
      ['attention bias', tinyLlamaJson({ attention_bias: true }), /field 'attention_bias' is true: projections with a bias are not supported/],
      ['tie flag not boolean', tinyLlamaJson({ tie_word_embeddings: 'no' }), /field 'tie_word_embeddings' must be true or false/],
      ['bad eos', tinyLlamaJson({ eos_token_id: [2, 'x'] }), /field 'eos_token_id' must be a non-negative integer, a list of them, or null/],
      ['bad sliding window', tinyMistralJson({ sliding_window: 0 }), /field 'sliding_window' must be a positive integer, got 0/],
      ['pre-quantized', tinyLlamaJson({ quantization_config: { quant_method: 'gptq' } }), /field 'quantization_config' is present: pre-quantized checkpoints are not supported/],
    ];
    for (const [what, json, message] of cases) {
      it(what, () => {
        expect(() => parseLlamaConfig(json, 'tiny/config.json')).toThrow(LlamaConfigError);
        expect(() => parseLlamaConfig(json, 'tiny/config.json')).toThrow(new RegExp(`^tiny/config\\.json: ${message.source}`));
      });
    }

    it('not an object', () => {
      expect(() => parseLlamaConfig([1, 2])).toThrow(/config\.json: expected a JSON object/);
    });

    it('unreadable and malformed files name the path', () => {
      const missing = join(tmp.dir, 'nope.json');
      expect(() => readLlamaConfig(missing)).toThrow(new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: cannot read`));
      const bad = join(tmp.dir, 'bad.json');
      writeFileSync(bad, '{"architectures": [');
      expect(() => readLlamaConfig(bad)).toThrow(/bad\.json: not valid JSON/);
      const good = join(tmp.dir, 'config.json');
      writeFileSync(good, JSON.stringify(tinyMistralJson()));
      expect(readLlamaConfig(good).architecture).toBe('MistralForCausalLM');
    });
  });
});

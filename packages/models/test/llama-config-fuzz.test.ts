// config.json from untrusted sources: hostile sizes are refused before anything is
// allocated, and thousands of damaged copies of a valid file either parse to a consistent
// config or fail with a LlamaConfigError that names the file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryStats, serializeSafetensors, tensor } from '@blora/tensor';
import { fuzzJson } from '@blora/tensor/testing';
import {
  CONFIG_LIMITS, LlamaConfigError, expectedTensors, llamaConfigToJson, loadLlama, parseLlamaConfig, readLlamaConfig,
  type LlamaConfig,
} from '../src/index.js';
import { tempDir, tinyLlamaJson } from './llama-fixtures.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** A deeply nested array as JSON text. */
const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

/** config.json text of the tiny Llama with `fields` replaced by raw JSON texts. */
function configText(fields: Record<string, string>): string {
  let text = JSON.stringify(tinyLlamaJson(Object.fromEntries(Object.keys(fields).map((k) => [k, `@${k}@`]))));
  for (const [k, raw] of Object.entries(fields)) text = text.replace(JSON.stringify(`@${k}@`), () => raw);
  return text;
}

describe('hostile config.json', () => {
  const limit = CONFIG_LIMITS.maxTensorElements;
  const cases: [string, Record<string, string>, string][] = [
    ['hidden_size 1e12', { hidden_size: '1e12', num_attention_heads: '4', num_key_value_heads: '4' },
      `field 'hidden_size' makes model.embed_tokens.weight [37, 1000000000000] hold 37000000000000 elements, more than the limit of ${limit}`],
    ['num_hidden_layers 1e9', { num_hidden_layers: '1e9' }, `field 'num_hidden_layers' is 1000000000, more than the limit of ${CONFIG_LIMITS.maxLayers}`],
    ['vocab_size 2^40', { vocab_size: '1099511627776' }, "field 'vocab_size' makes model.embed_tokens.weight [1099511627776, 16]"],
    ['intermediate_size 1e15', { intermediate_size: '1e15' }, "field 'intermediate_size' makes mlp.gate_proj.weight [1000000000000000, 16]"],
    ['head_dim 1e12', { head_dim: '1000000000000' }, "field 'head_dim' makes self_attn.q_proj.weight [4000000000000, 16]"],
    ['hidden_size 2^53 + 1 (not a safe integer)', { hidden_size: '9007199254740993' }, "field 'hidden_size' must be a positive integer, got 9007199254740992"],
    ['hidden_size 1e400 (Infinity)', { hidden_size: '1e400' }, "field 'hidden_size' must be a positive integer, got Infinity"],
    ['negative size', { intermediate_size: '-24' }, "field 'intermediate_size' must be a positive integer, got -24"],
    ['negative zero', { num_hidden_layers: '-0' }, "field 'num_hidden_layers' must be a positive integer, got 0"],
    ['size as a string', { vocab_size: '"37"' }, `field 'vocab_size' must be a positive integer, got "37"`],
    ['size as an array', { vocab_size: '[37]' }, "field 'vocab_size' must be a positive integer, got [37]"],
    ['inherited name as activation', { hidden_act: '"constructor"' }, `field 'hidden_act' names an unsupported activation "constructor"`],
    ['activation __proto__', { hidden_act: '"__proto__"' }, `field 'hidden_act' names an unsupported activation "__proto__"`],
    ['deep nesting in a known field', { hidden_size: nested(100_000) }, 'nested more than 64 levels deep'],
    ['deep nesting in an unknown field', { transformers_version: nested(2_000) }, 'nested more than 64 levels deep'],
    ['NaN-like rope theta', { rope_theta: '"NaN"' }, `field 'rope_theta' must be a positive number, got "NaN"`],
    ['rope factor 1e400', { rope_scaling: '{"type":"linear","factor":1e400}' }, "field 'rope_scaling' needs a positive number 'factor', got Infinity"],
  ];

  it.each(cases)('%s', (_what, fields, message) => {
    const path = join(tmp.dir, 'config.json');
    writeFileSync(path, configText(fields));
    const before = memoryStats('cpu');
    expect(() => readLlamaConfig(path)).toThrow(LlamaConfigError);
    expect(() => readLlamaConfig(path)).toThrow(`${path}: ${message}`);
    expect(memoryStats('cpu')).toEqual(before);
  });

  it('an inherited name as torch_dtype is not a dtype', () => {
    expect(parseLlamaConfig(tinyLlamaJson({ torch_dtype: 'constructor' })).torchDType).toBeNull();
    expect(parseLlamaConfig(tinyLlamaJson({ torch_dtype: 'toString' })).torchDType).toBeNull();
  });

  it('sizes at the limits are accepted', () => {
    const c = parseLlamaConfig(tinyLlamaJson({ num_hidden_layers: CONFIG_LIMITS.maxLayers, vocab_size: limit / 16 }));
    expect([c.numHiddenLayers, c.vocabSize]).toEqual([CONFIG_LIMITS.maxLayers, limit / 16]);
    expect(() => parseLlamaConfig(tinyLlamaJson({ vocab_size: limit / 16 + 1 }))).toThrow(/vocab_size' makes model\.embed_tokens\.weight/);
    expect(() => parseLlamaConfig(tinyLlamaJson({ num_hidden_layers: CONFIG_LIMITS.maxLayers + 1 }))).toThrow(/num_hidden_layers' is 1025/);
  });

  it('loadLlama refuses a hostile config before reading or allocating any weight', () => {
    const dir = join(tmp.dir, 'hostile-model');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), configText({ num_hidden_layers: '1e9' }));
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors({ 'model.norm.weight': tensor([1, 2]) }));
    const before = memoryStats('cpu');
    expect(() => loadLlama(dir)).toThrow(`${join(dir, 'config.json')}: field 'num_hidden_layers' is 1000000000`);
    expect(memoryStats('cpu')).toEqual(before);
  });
});

/** Checks that an accepted config holds together; returns what is wrong, or null. */
function inconsistency(c: LlamaConfig): string | null {
  const sizes = [c.vocabSize, c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim];
  if (!sizes.every((v) => Number.isSafeInteger(v) && v >= 1)) return `non-positive size in ${sizes.join(', ')}`;
  if (c.numHiddenLayers > CONFIG_LIMITS.maxLayers) return `${c.numHiddenLayers} layers`;
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0 || c.headDim % 2 !== 0) return 'heads or head_dim inconsistent';
  const shapes = expectedTensors(c);
  if (shapes.length !== 9 * c.numHiddenLayers + 2 + (c.tieWordEmbeddings ? 0 : 1)) return `${shapes.length} tensors expected`;
  if (shapes.some(([, s]) => s.reduce((a, b) => a * b, 1) > CONFIG_LIMITS.maxTensorElements)) return 'a tensor over the size limit';
  if (!['silu', 'gelu', 'gelu_tanh'].includes(c.hiddenAct)) return `activation ${String(c.hiddenAct)}`;
  if (c.torchDType !== null && typeof c.torchDType !== 'string') return 'torch dtype not a string';
  if (![c.rmsNormEps, c.ropeTheta, c.initializerRange].every((v) => Number.isFinite(v) && v > 0)) return 'non-positive float field';
  if (!c.eosTokenIds.every((id) => Number.isSafeInteger(id) && id >= 0)) return 'bad eos id';
  // What is written back parses to the same config.
  const again = parseLlamaConfig(JSON.parse(JSON.stringify(llamaConfigToJson(c))) as unknown, 'again');
  const { raw: _a, ...first } = c;
  const { raw: _b, ...second } = again;
  return JSON.stringify(first) === JSON.stringify(second) ? null : 'written back, it parses differently';
}

describe('config.json fuzzing', () => {
  it('damaged copies parse to a consistent config or fail with a LlamaConfigError naming the file', () => {
    const valid = JSON.stringify(tinyLlamaJson({
      eos_token_id: [2, 5], head_dim: 4,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    }), null, 1);
    const path = join(tmp.dir, 'fuzz-config.json');
    const report = fuzzJson(valid, { iterations: 3000, seed: 11 }, (bytes) => {
      writeFileSync(path, bytes);
      return inconsistency(readLlamaConfig(path));
    }, (e) => e instanceof LlamaConfigError && e.message.startsWith(`${path}: `));
    expect(report.problems).toEqual([]);
    expect(report.accepted).toBeGreaterThan(100);
    expect(report.rejected).toBeGreaterThan(1000);
    for (const counts of Object.values(report.byKind)) expect(counts.accepted + counts.rejected).toBeGreaterThan(0);
  });
});

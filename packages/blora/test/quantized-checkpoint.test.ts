// 4-bit checkpoints: a model whose projections are NF4 (bitsandbytes' layout) or INT blocks
// (our layout) is saved as stored and loaded back bit for bit; damaged files and configs fail
// with errors that name the problem.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader, writeSafetensors, type RawTensor, type Tensor } from '@blora/tensor';
import { FourBitLinear, IntBlockLinear, intBlockTensors, quantizeLinear, type QuantizedLinear, type QuantizeOptions } from '@blora/quant';
import { createLlama, loadLlama, saveLlama, toDType, type LlamaForCausalLM } from '@blora/models';
import { DenseBase, QuantizedBase, quantizedBaseFactory, replaceModuleAt } from '../src/index.js';
import { removeDir, tempDir, tinyConfig } from './train-fixtures.js';

const root = tempDir('blora-qckpt-');
afterAll(() => removeDir(root));
let dirCount = 0;
const fresh = (): string => join(root, `m${dirCount++}`);

const VOCAB = 40;
const IDS = [[1, 7, 3, 39, 12, 5, 0, 22], [4, 4, 9, 31, 2, 18, 26, 11]];

/** A tiny Llama (hidden 32, MLP 48, 2 layers, GQA) whose projections are quantized with `options` (all, or those `only` accepts). */
function quantizedModel(options: QuantizeOptions, seed = 5, only: (name: string) => boolean = () => true): LlamaForCausalLM {
  return createLlama(tinyConfig(VOCAB), {
    seed,
    linearFactory: (name, weight, context) => {
      if (!only(name)) return new DenseBase(toDType(weight, context.dtype));
      try {
        return new QuantizedBase(quantizeLinear(weight, options));
      } finally {
        weight.dispose();
      }
    },
  });
}

function load(dir: string): LlamaForCausalLM {
  return loadLlama(dir, { linearFactory: (_n, w, c) => new DenseBase(toDType(w, c.dtype)), quantizedLinearFactory: quantizedBaseFactory });
}

function bytes(t: Tensor): number[] {
  const v = t.toTypedArray();
  return Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

/** Every stored part of a quantized weight, as raw bytes (and the scalars). */
function partsOf(q: QuantizedLinear): unknown[] {
  if (q instanceof FourBitLinear) {
    const dq = q.doubleQuant;
    return [q.format, q.blocksize, q.sourceDType, bytes(q.packed), bytes(q.table), q.absmax ? bytes(q.absmax) : null,
      dq ? [bytes(dq.codes), bytes(dq.nestedAbsmax), bytes(dq.code), dq.offset, dq.nestedBlocksize] : null];
  }
  const i = q as IntBlockLinear;
  return [i.format, i.blockRows, i.blockCols, i.scaleDType, bytes(i.codes), bytes(i.scaleTensor), bytes(i.offsetTensor)];
}

function quantizedWeights(model: LlamaForCausalLM): Map<string, QuantizedLinear> {
  const out = new Map<string, QuantizedLinear>();
  for (const [name, layer] of model.linearLayers()) if (layer instanceof QuantizedBase) out.set(name, layer.quantized);
  return out;
}

function expectSameModel(a: LlamaForCausalLM, b: LlamaForCausalLM): void {
  const qa = quantizedWeights(a);
  const qb = quantizedWeights(b);
  expect([...qb.keys()]).toEqual([...qa.keys()]);
  for (const [name, q] of qa) expect(partsOf(qb.get(name)!), name).toEqual(partsOf(q));
  const pa = new Map(a.namedParameters());
  for (const [name, p] of b.namedParameters()) expect(bytes(p), name).toEqual(bytes(pa.get(name)!));
  expect(Array.from(b.forward(IDS).toFloat64Array())).toEqual(Array.from(a.forward(IDS).toFloat64Array()));
}

function readConfig(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
}

function writeConfig(dir: string, edit: (json: Record<string, unknown>) => void): void {
  const json = readConfig(dir);
  edit(json);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
}

/** Rewrites model.safetensors with its tensors and metadata changed by `edit`. */
function editWeights(dir: string, edit: (tensors: Map<string, Tensor | RawTensor>, metadata: Record<string, string>) => void): void {
  const path = join(dir, 'model.safetensors');
  const reader = SafetensorsReader.open(path);
  const tensors = new Map<string, Tensor | RawTensor>(reader.names().map((n) => [n, reader.readRaw(n)] as const));
  const metadata = { ...reader.metadata };
  reader.close();
  edit(tensors, metadata);
  writeSafetensors(path, tensors, metadata);
}

describe('NF4 checkpoints in bitsandbytes layout', () => {
  const model = quantizedModel({ format: 'nf4', blocksize: 64, doubleQuant: true });
  const dir = fresh();
  saveLlama(model, dir, { quantized: true });

  it('write transformers quantization_config and bitsandbytes tensor names', () => {
    expect(readConfig(dir).quantization_config).toEqual({
      quant_method: 'bitsandbytes', _load_in_4bit: true, _load_in_8bit: false, llm_int8_skip_modules: null,
      llm_int8_enable_fp32_cpu_offload: false, llm_int8_has_fp16_weight: false, bnb_4bit_quant_type: 'nf4',
      bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'float32', bnb_4bit_quant_storage: 'uint8',
      load_in_4bit: true, load_in_8bit: false,
    });
    const reader = SafetensorsReader.open(join(dir, 'model.safetensors'));
    const w = 'model.layers.1.mlp.down_proj.weight'; // [32, 48]: 1536 elements, 24 blocks of 64
    expect(reader.names().filter((n) => n.startsWith(w)).sort()).toEqual([w, `${w}.absmax`, `${w}.nested_absmax`,
      `${w}.nested_quant_map`, `${w}.quant_map`, `${w}.quant_state.bitsandbytes__nf4`]);
    expect(reader.entries.get(w)).toMatchObject({ dtype: 'U8', shape: [768, 1] });
    expect(reader.entries.get(`${w}.absmax`)).toMatchObject({ dtype: 'U8', shape: [24] });
    const state = JSON.parse(new TextDecoder().decode(reader.readRaw(`${w}.quant_state.bitsandbytes__nf4`).data)) as Record<string, unknown>;
    expect(state).toMatchObject({ quant_type: 'nf4', blocksize: 64, dtype: 'float32', shape: [32, 48], nested_blocksize: 256 });
    expect(reader.entries.get('model.embed_tokens.weight')).toMatchObject({ dtype: 'F32', shape: [VOCAB, 32] });
    expect(reader.metadata.format).toBe('pt');
    reader.close();
  });

  it('load back bit for bit, without dequantizing, with the same outputs', () => {
    const back = load(dir);
    expectSameModel(model, back);
    expect(back.config.raw.quantization_config).toBeUndefined();
    // Saving the loaded model dequantized gives a plain dense checkpoint again.
    const dense = fresh();
    saveLlama(back, dense);
    expect(readConfig(dense).quantization_config).toBeUndefined();
    const reloaded = loadLlama(dense);
    const [x, y] = [reloaded.forward(IDS).toFloat64Array(), back.forward(IDS).toFloat64Array()];
    expect(Math.max(...x.map((v, i) => Math.abs(v - y[i]!)))).toBeLessThan(1e-4);
  });

  it('load with the quantization_config transformers writes (threshold, 16-bit compute dtype, fields omitted)', () => {
    const d = fresh();
    saveLlama(model, d, { quantized: true });
    writeConfig(d, (json) => (json.quantization_config = {
      quant_method: 'bitsandbytes', load_in_4bit: true, llm_int8_threshold: 6.0, bnb_4bit_quant_type: 'nf4',
      bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'bfloat16',
    }));
    expectSameModel(model, load(d));
  });

  it('keep absmax in float32 without double quantization, and FP4 too', () => {
    for (const options of [{ format: 'nf4', blocksize: 32, doubleQuant: false }, { format: 'fp4', blocksize: 128 }] as const) {
      const m = quantizedModel(options, 9);
      const d = fresh();
      saveLlama(m, d, { quantized: true });
      expect(readConfig(d).quantization_config).toMatchObject({ bnb_4bit_quant_type: options.format, bnb_4bit_use_double_quant: options.format === 'fp4' });
      expectSameModel(m, load(d));
    }
  });

  it('keep projections left dense dense (a model quantized only in its MLPs)', () => {
    const m = quantizedModel({ format: 'nf4' }, 11, (name) => name.includes('.mlp.'));
    const d = fresh();
    saveLlama(m, d, { quantized: true });
    const back = load(d);
    expect([...quantizedWeights(back).keys()]).toEqual([...quantizedWeights(m).keys()]);
    expect(back.model.layers.items[0]!.self_attn.q_proj).toBeInstanceOf(DenseBase);
    expectSameModel(m, back);
  });
});

describe('INT4 checkpoints in our layout', () => {
  it.each([
    ['1-D groups of 16, float16 scales', { format: 'int4', groupSize: 16 }, [1, 16, 'float16']],
    ['2-D tiles of 8 x 4, float32 scales', { format: 'int4', blockRows: 8, blockCols: 4, scaleDType: 'float32' }, [8, 4, 'float32']],
    ['INT8 tiles of 2 x 16', { format: 'int8', blockRows: 2, blockCols: 16 }, [2, 16, 'float16']],
  ] as const)('%s round-trip bit for bit, sharded too', (_label, options, [rows, cols, scaleDType]) => {
    const model = quantizedModel(options as QuantizeOptions, 13);
    const dir = fresh();
    saveLlama(model, dir, { quantized: true });
    const bits = options.format === 'int4' ? 4 : 8;
    expect(readConfig(dir).quantization_config).toEqual({ quant_method: 'blora-int', bits, block_rows: rows, block_cols: cols, scale_dtype: scaleDType });
    const reader = SafetensorsReader.open(join(dir, 'model.safetensors'));
    const w = 'model.layers.0.self_attn.k_proj.weight'; // [16, 32]
    expect(reader.entries.get(w)).toMatchObject({ dtype: 'U8', shape: bits === 4 ? [256] : [16, 32] });
    expect(reader.entries.get(`${w}.scales`)).toMatchObject({ dtype: scaleDType === 'float16' ? 'F16' : 'F32', shape: [16 / rows, 32 / cols] });
    expect(JSON.parse(reader.metadata[`${w}.quant`]!)).toMatchObject({ format: options.format, shape: [16, 32], block_rows: rows, block_cols: cols });
    reader.close();
    expectSameModel(model, load(dir));

    const sharded = fresh();
    const files = saveLlama(model, sharded, { quantized: true, maxShardSize: 6000 });
    expect(files.length).toBeGreaterThan(3);
    const index = JSON.parse(readFileSync(join(sharded, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    expect(index.weight_map[`${w}.offsets`]).toBe(index.weight_map[w]);
    expectSameModel(model, load(sharded));
  });
});

describe('quantized checkpoints that cannot be loaded', () => {
  const model = quantizedModel({ format: 'int4', blockRows: 8, blockCols: 4 }, 17);
  const nf4 = quantizedModel({ format: 'nf4' }, 17);
  const W = 'model.layers.0.mlp.up_proj.weight';

  function broken(source: LlamaForCausalLM, edit: (dir: string) => void): string {
    const dir = fresh();
    saveLlama(source, dir, { quantized: true });
    edit(dir);
    return dir;
  }

  const deep = JSON.parse(`${'['.repeat(100)}${']'.repeat(100)}`) as unknown;
  it.each([
    ['nested too deeply', 'int4', deep, /config\.json: nested more than 64 levels deep/],
    ['not an object', 'int4', 'yes', /field 'quantization_config' must be an object, got "yes"/],
    ['another method', 'int4', { quant_method: 'gptq', bits: 4 }, /names quant_method "gptq", which is not supported; supported: "bitsandbytes"/],
    ['8-bit bitsandbytes', 'nf4', { quant_method: 'bitsandbytes', load_in_8bit: true }, /8-bit bitsandbytes \(LLM.int8\), which is not supported/],
    ['another storage', 'nf4', { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_quant_storage: 'bfloat16' },
      /bnb_4bit_quant_storage "bfloat16"; only "uint8" packing is supported/],
    ['an unknown 4-bit type', 'nf4', { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf3' }, /bnb_4bit_quant_type "nf3"/],
    ['3 bits', 'int4', { quant_method: 'blora-int', bits: 3, block_rows: 8, block_cols: 4, scale_dtype: 'float16' }, /has bits 3; expected 4 or 8/],
    ['zero block rows', 'int4', { quant_method: 'blora-int', bits: 4, block_rows: 0, block_cols: 4, scale_dtype: 'float16' }, /block_rows 0; expected a positive integer/],
    ['bfloat16 scales', 'int4', { quant_method: 'blora-int', bits: 4, block_rows: 8, block_cols: 4, scale_dtype: 'bfloat16' }, /scale_dtype "bfloat16"/],
    ['int8 where int4 is stored', 'int4', { quant_method: 'blora-int', bits: 8, block_rows: 8, block_cols: 4, scale_dtype: 'float16' },
      /'model\.layers\.0\.self_attn\.q_proj\.weight' is stored as int4, but quantization_config in config\.json says int8/],
    ['other blocks than stored', 'int4', { quant_method: 'blora-int', bits: 4, block_rows: 1, block_cols: 32, scale_dtype: 'float16' },
      /is int4 \[32, 32\] blocks 8x4, float16 scales on cpu, but quantization_config says blocks of 1x32 with float16 scales/],
    ['no double quantization where it is stored', 'nf4', { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4' },
      /is double-quantized, but quantization_config says bnb_4bit_use_double_quant false/],
  ] as const)('a corrupt quantization_config (%s)', (_label, which, value, message) => {
    const dir = broken(which === 'nf4' ? nf4 : model, (d) => writeConfig(d, (json) => (json.quantization_config = value)));
    expect(() => load(dir)).toThrow(message as RegExp);
  });

  it('a quantized checkpoint without a quantized factory, or without quantization_config', () => {
    const dir = broken(model, () => {});
    expect(() => loadLlama(dir)).toThrow(/the checkpoint is stored quantized \(blora-int int4\); pass a quantizedLinearFactory/);
    writeConfig(dir, (json) => delete json.quantization_config);
    expect(() => load(dir)).toThrow(/unexpected tensors 'model\.layers\.0\.mlp\.down_proj\.weight\.offsets'/);
  });

  it('missing tensors, wrong shapes and damaged entries name the tensor', () => {
    let dir = broken(model, (d) => editWeights(d, (t) => t.delete(`${W}.offsets`)));
    expect(() => load(dir)).toThrow(new RegExp(`missing tensors '${W}\\.offsets'`));
    dir = broken(nf4, (d) => editWeights(d, (t) => t.delete(`${W}.nested_quant_map`)));
    expect(() => load(dir)).toThrow(new RegExp(`missing tensors '${W}\\.nested_quant_map'`));
    // A weight of the wrong shape, stored consistently in itself.
    dir = broken(model, (d) => editWeights(d, (t, meta) => {
      const downProj = (createLlama(tinyConfig(VOCAB)).model.layers.items[0]!.mlp.down_proj as unknown as { weight: Tensor }).weight; // [32, 48]
      const stored = intBlockTensors(W, IntBlockLinear.quantize(downProj, { blockRows: 8, blockCols: 4 }));
      for (const [k, v] of Object.entries(stored.tensors)) t.set(k, v);
      Object.assign(meta, stored.metadata);
    }));
    expect(() => load(dir)).toThrow(new RegExp(`'${W}' is stored with shape \\[32, 48\\], but config\\.json implies \\[48, 32\\]`));
    // Codes cut short, and layout metadata that is not JSON.
    dir = broken(model, (d) => editWeights(d, (t) => {
      const codes = t.get(W) as RawTensor;
      t.set(W, { ...codes, shape: [codes.data.length - 2], data: codes.data.subarray(0, codes.data.length - 2) });
    }));
    expect(() => load(dir)).toThrow(new RegExp(`tensor '${W}' is U8\\[766\\] \\(766 elements\\); expected U8 with 768 elements`));
    dir = broken(model, (d) => editWeights(d, (_t, meta) => (meta[`${W}.quant`] = '{"format": "int4", "shape": [48, 32')));
    expect(() => load(dir)).toThrow(/layout metadata is not a JSON object/);
  });

  it('refuses to write one config for layers stored differently', () => {
    const mixed = quantizedModel({ format: 'int4', groupSize: 16 }, 3, (name) => name.includes('.mlp.'));
    const other = quantizedModel({ format: 'int4', groupSize: 8 }, 3);
    replaceModuleAt(mixed, 'model.layers.0.self_attn.q_proj', new QuantizedBase(quantizedWeights(other).get('model.layers.0.self_attn.q_proj')!));
    expect(() => saveLlama(mixed, fresh(), { quantized: true }))
      .toThrow(/cannot write one quantization_config for layers stored differently: 'model\.layers\.0\.self_attn\.q_proj\.weight' is int4 \[32, 32\] blocks 1x8, float16 scales on cpu, 'model\.layers\.0\.mlp\.gate_proj\.weight' is int4 \[48, 32\] blocks 1x16/);
  });
});

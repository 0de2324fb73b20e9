import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsReader, serializeSafetensors, tensor, type RawTensor, type Tensor } from '@blora/tensor';
import {
  FourBitLinear, IntBlockLinear, NF4_CODE, dynamicMap, loadQuantized, pythonFloatRepr, quantizeLinear, quantizedFormatOf,
  saveQuantized, serializeQuantized, type QuantizedLinear,
} from '../src/index.js';
import { f32, normalFloat32, randomInts, refDecodeFourBit } from './helpers.js';

function weight(values: ArrayLike<number>, rows: number, cols: number, dtype: 'float32' | 'bfloat16' = 'float32'): Tensor {
  return tensor(Float64Array.from(values), { shape: [rows, cols], dtype });
}

function bytes(t: Tensor): number[] {
  const v = t.toTypedArray();
  return Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

function u8(values: ArrayLike<number>, shape: number[]): RawTensor {
  return { dtype: 'U8', shape, data: Uint8Array.from(values) };
}

function f32Raw(values: ArrayLike<number>): RawTensor {
  return { dtype: 'F32', shape: [values.length], data: new Uint8Array(Float32Array.from(values).buffer) };
}

function text(s: string): RawTensor {
  const data = new TextEncoder().encode(s);
  return { dtype: 'U8', shape: [data.length], data };
}

/** Every tensor a weight is made of, as bytes, to compare bit for bit. */
function partsOf(q: QuantizedLinear): number[][] {
  if (q instanceof FourBitLinear) {
    const dq = q.doubleQuant;
    return [bytes(q.packed), bytes(q.table), q.absmax ? bytes(q.absmax) : [],
      dq ? bytes(dq.codes) : [], dq ? bytes(dq.nestedAbsmax) : [], dq ? bytes(dq.code) : [], dq ? [dq.offset, dq.nestedBlocksize] : []];
  }
  const i = q as IntBlockLinear;
  return [bytes(i.codes), bytes(i.scaleTensor), bytes(i.offsetTensor), [i.blockRows, i.blockCols], i.scaleTensor.shape as number[]];
}

describe('Python float repr (json.dumps numbers)', () => {
  it('formats like CPython', () => {
    const cases: [number, string][] = [
      [0, '0.0'], [-0, '-0.0'], [1, '1.0'], [-2.5, '-2.5'], [0.1, '0.1'], [0.0001, '0.0001'], [1e-5, '1e-05'],
      [1.5e-5, '1.5e-05'], [123456789012345.6, '123456789012345.6'], [1e15, '1000000000000000.0'], [1e16, '1e+16'],
      [1.2345e-7, '1.2345e-07'], [f32(0.1), '0.10000000149011612'], [2.5e300, '2.5e+300'],
    ];
    for (const [x, s] of cases) expect(pythonFloatRepr(x)).toBe(s);
  });
});

describe('bitsandbytes layout', () => {
  it('writes the tensors transformers + bitsandbytes write, with the packed quant_state', () => {
    const q = FourBitLinear.quantize(weight(normalFloat32(4 * 64, 1), 4, 64, 'bfloat16'));
    const reader = SafetensorsReader.fromBytes(serializeQuantized({ 'layer.weight': q }));
    const e = (name: string) => {
      const x = reader.entries.get(name)!;
      return [x.dtype, x.shape];
    };
    expect(reader.names().sort()).toEqual([
      'layer.weight', 'layer.weight.absmax', 'layer.weight.nested_absmax', 'layer.weight.nested_quant_map',
      'layer.weight.quant_map', 'layer.weight.quant_state.bitsandbytes__nf4',
    ]);
    expect(e('layer.weight')).toEqual(['U8', [128, 1]]);
    expect(e('layer.weight.absmax')).toEqual(['U8', [4]]);
    expect(e('layer.weight.quant_map')).toEqual(['F32', [16]]);
    expect(e('layer.weight.nested_absmax')).toEqual(['F32', [1]]);
    expect(e('layer.weight.nested_quant_map')).toEqual(['F32', [256]]);
    expect(reader.metadata).toEqual({ format: 'pt' });
    const state = new TextDecoder().decode(reader.readRaw('layer.weight.quant_state.bitsandbytes__nf4').data);
    expect(state).toBe('{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4, 64], ' +
      `"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ${pythonFloatRepr(q.doubleQuant!.offset)}}`);
    expect(Array.from(reader.readTensor('layer.weight.quant_map').toFloat64Array())).toEqual(Array.from(NF4_CODE));
    expect(Array.from(reader.readTensor('layer.weight.nested_quant_map').toFloat64Array())).toEqual(Array.from(dynamicMap()));
    q.dispose();
  });

  it('writes float32 absmax without double quantization, and the fp4 key', () => {
    const q = FourBitLinear.quantize(weight(normalFloat32(2 * 64, 2), 2, 64), { format: 'fp4', doubleQuant: false });
    const reader = SafetensorsReader.fromBytes(serializeQuantized({ w: q }));
    expect(reader.names().sort()).toEqual(['w', 'w.absmax', 'w.quant_map', 'w.quant_state.bitsandbytes__fp4']);
    expect(reader.entries.get('w.absmax')!.dtype).toBe('F32');
    expect(new TextDecoder().decode(reader.readRaw('w.quant_state.bitsandbytes__fp4').data))
      .toBe('{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [2, 64]}');
    q.dispose();
  });

  it('loads a checkpoint laid out by bitsandbytes', () => {
    // A 2 x 64 NF4 weight with blocksize 32, double quantized, written as Python would.
    const codes = randomInts(128, 3, 16);
    const packed = Array.from({ length: 64 }, (_, j) => codes[2 * j]! * 16 + codes[2 * j + 1]!);
    const qabsmax = [200, 17, 255, 128];
    const file = serializeSafetensors({
      'm.weight': u8(packed, [64, 1]),
      'm.weight.absmax': u8(qabsmax, [4]),
      'm.weight.quant_map': f32Raw(NF4_CODE),
      'm.weight.nested_absmax': f32Raw([0.25]),
      'm.weight.nested_quant_map': f32Raw(dynamicMap()),
      'm.weight.quant_state.bitsandbytes__nf4': text('{"quant_type": "nf4", "blocksize": 32, "dtype": "float16", "shape": [2, 64], ' +
        '"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5}'),
    }, { format: 'pt' });
    const reader = SafetensorsReader.fromBytes(file);
    expect(quantizedFormatOf(reader, 'm.weight')).toBe('nf4');
    const q = loadQuantized(reader, 'm.weight') as FourBitLinear;
    expect(q.shape).toEqual([2, 64]);
    expect(q.blocksize).toBe(32);
    expect(q.sourceDType).toBe('float16');
    const map = dynamicMap();
    const absmax = qabsmax.map((c) => f32(f32(map[c]! * 0.25) + 0.5));
    const expected = refDecodeFourBit(packed, absmax, NF4_CODE, 32, 128);
    expect(Array.from(q.dequantize().toFloat64Array())).toEqual(Array.from(expected));
    q.dispose();
  });
});

describe('round trips', () => {
  const cases: [string, () => QuantizedLinear][] = [
    ['nf4 + double quantization', () => quantizeLinear(weight(normalFloat32(6 * 96, 4), 6, 96), { format: 'nf4' })],
    ['nf4, odd element count', () => quantizeLinear(weight(normalFloat32(3 * 33, 5), 3, 33), { format: 'nf4', blocksize: 32, doubleQuant: false })],
    ['fp4, blocksize 128', () => quantizeLinear(weight(normalFloat32(4 * 64, 6), 4, 64), { format: 'fp4', blocksize: 128 })],
    ['int4, groups of 32, float16', () => quantizeLinear(weight(normalFloat32(4 * 64, 7), 4, 64), { format: 'int4', groupSize: 32 })],
    ['int4, tiles 8 x 4, float32', () => quantizeLinear(weight(normalFloat32(16 * 12, 8), 16, 12), { format: 'int4', blockRows: 8, blockCols: 4, scaleDType: 'float32' })],
    ['int8, tiles 8 x 8', () => quantizeLinear(weight(normalFloat32(8 * 16, 9), 8, 16), { format: 'int8', blockRows: 8, blockCols: 8 })],
  ];
  for (const [label, make] of cases) {
    it(`${label}: save then load is bit-exact`, () => {
      const q = make();
      const bias = tensor([1, 2, 3]);
      const reader = SafetensorsReader.fromBytes(serializeQuantized({ 'a.weight': q, 'a.bias': bias }, { note: 'x' }));
      expect(reader.metadata['note']).toBe('x');
      expect(quantizedFormatOf(reader, 'a.bias')).toBeNull();
      expect(Array.from(reader.readTensor('a.bias').toFloat64Array())).toEqual([1, 2, 3]);
      const back = loadQuantized(reader, 'a.weight');
      expect(back.format).toBe(q.format);
      expect(back.constructor).toBe(q.constructor);
      expect(partsOf(back)).toEqual(partsOf(q));
      expect(Array.from(back.dequantize().toFloat64Array())).toEqual(Array.from(q.dequantize().toFloat64Array()));
      q.dispose();
      back.dispose();
    });
  }

  it('writes and reads files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'quant-'));
    try {
      const q = quantizeLinear(weight(normalFloat32(2 * 32, 1), 2, 32), { format: 'int4', groupSize: 16 });
      const path = join(dir, 'model.safetensors');
      saveQuantized(path, { w: q });
      const reader = SafetensorsReader.open(path);
      const meta = JSON.parse(reader.metadata['w.quant']!);
      expect(meta).toMatchObject({ format: 'int4', shape: [2, 32], block_rows: 1, block_cols: 16, scale_dtype: 'float16' });
      expect(partsOf(loadQuantized(reader, 'w'))).toEqual(partsOf(q));
      reader.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('corrupt or truncated checkpoints', () => {
  const good = (): Record<string, RawTensor> => ({
    w: u8(new Array(64).fill(0x77), [64, 1]),
    'w.absmax': f32Raw([1, 2]),
    'w.quant_map': f32Raw(NF4_CODE),
    'w.quant_state.bitsandbytes__nf4': text('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [2, 64]}'),
  });
  const load = (tensors: Record<string, RawTensor>, meta: Record<string, string> = {}) =>
    loadQuantized(SafetensorsReader.fromBytes(serializeSafetensors(tensors, meta)), 'w');

  it('loads the intact version', () => {
    expect(load(good()).describe()).toBe('nf4 [2, 64] blocksize 64 on cpu');
  });

  it('names the tensor whose length does not match the shape', () => {
    expect(() => load({ ...good(), w: u8(new Array(63).fill(0), [63, 1]) }))
      .toThrow(/tensor 'w' is U8\[63, 1\] \(63 elements\); expected U8 with 64 elements \(corrupt or truncated\?\)/);
    expect(() => load({ ...good(), 'w.absmax': f32Raw([1]) })).toThrow(/tensor 'w.absmax' is F32\[1\] \(1 elements\); expected F32 with 2 elements/);
    const { 'w.quant_map': _, ...missing } = good();
    expect(() => load(missing)).toThrow(/tensor 'w.quant_map' is missing/);
  });

  it('rejects a broken quant_state', () => {
    expect(() => load({ ...good(), 'w.quant_state.bitsandbytes__nf4': text('{"quant_type": "nf4", "blocksize": 64') }))
      .toThrow(/the quant_state is not a JSON object/);
    expect(() => load({ ...good(), 'w.quant_state.bitsandbytes__nf4': text('{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [2, 64]}') }))
      .toThrow(/quant_state says quant_type "fp4" but its key says nf4/);
    expect(() => load({ ...good(), 'w.quant_state.bitsandbytes__nf4': text('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [2, 8, 8]}') }))
      .toThrow(/shape must be \[out, in\] \(a linear weight\), got \[2,8,8\]/);
    expect(() => load({ ...good(), 'w.quant_state.bitsandbytes__nf4': text('{"quant_type": "nf4", "blocksize": 48, "dtype": "float32", "shape": [2, 64]}') }))
      .toThrow(/blocksize must be a power of two from 32 to 4096, got 48/);
    expect(() => load({ ...good(), 'w.quant_state.bitsandbytes__nf4': text('{"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [2, 64]}') }))
      .toThrow(/unsupported dtype "int8"/);
  });

  it('rejects broken integer-block layouts and plain tensors', () => {
    const q = IntBlockLinear.quantize(weight(normalFloat32(64, 1), 2, 32), { groupSize: 32 });
    const file = serializeQuantized({ w: q });
    const reader = SafetensorsReader.fromBytes(file);
    const tensors = Object.fromEntries(reader.names().map((n) => [n, reader.readRaw(n)]));
    const meta = JSON.parse(reader.metadata['w.quant']!);
    expect(() => load(tensors, { 'w.quant': JSON.stringify({ ...meta, block_cols: 5 }) })).toThrow(/blocks of 1 x 5 do not tile \[2, 32\]/);
    expect(() => load(tensors, { 'w.quant': JSON.stringify({ ...meta, format: 'int2' }) })).toThrow(/unknown format "int2"/);
    expect(() => load({ ...tensors, 'w.scales': f32Raw([1]) }, reader.metadata)).toThrow(/tensor 'w.scales' is F32\[1\] \(1 elements\); expected F16 or F32 with 2 elements/);
    expect(() => load({ w: f32Raw([1, 2]) })).toThrow(/'w' is not a quantized weight in in-memory buffer/);
    q.dispose();
  });

  it('refuses two entries that write the same tensor name', () => {
    const q = IntBlockLinear.quantize(weight(normalFloat32(64, 1), 2, 32), { groupSize: 32 });
    expect(() => serializeQuantized({ w: q, 'w.scales': tensor([1]) })).toThrow(/two entries write the tensor name 'w.scales'/);
    q.dispose();
  });
});

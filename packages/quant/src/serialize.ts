// Quantized weights in safetensors files.
//
// NF4 / FP4: exactly the tensors transformers + bitsandbytes write next to a weight `W`
// (bitsandbytes' QuantState.as_dict(packed=True)):
//   W                                  U8  [ceil(n/2), 1]  packed codes
//   W.absmax                           F32 [blocks], or U8 [blocks] when double quantized
//   W.quant_map                        F32 [16]            code values
//   W.nested_absmax                    F32 [ceil(blocks/256)]   (double quantization only)
//   W.nested_quant_map                 F32 [256]                (double quantization only)
//   W.quant_state.bitsandbytes__nf4    U8  [k]  UTF-8 of json.dumps({"quant_type", "blocksize",
//       "dtype", "shape", and with double quantization "nested_blocksize", "nested_dtype",
//       "nested_offset"}) (bitsandbytes__fp4 for FP4)
//
// INT4 / INT8 (this library's layout):
//   W          U8 codes: int4 [ceil(n/2)] two per byte, even element in the high nibble;
//              int8 [out, in]; element order row-major (flat index r·in + c)
//   W.scales   F16 or F32 [out/blockRows, in/blockCols]  α
//   W.offsets  same dtype and shape                      β
//   metadata "W.quant": JSON {"format", "shape", "block_rows", "block_cols", "scale_dtype",
//              "codes", "dequant"} describing the layout; W ≈ α·q + β per block.
import {
  SafetensorsReader, serializeSafetensors, tensor, writeSafetensors,
  type DType, type RawTensor, type SafetensorsInput, type Tensor,
} from '@blora/tensor';
import { blockCount } from './blockwise.js';
import { FourBitLinear, type DoubleQuantTensors } from './four-bit-linear.js';
import { IntBlockLinear } from './int-linear.js';
import { packedLength } from './pack.js';
import type { QuantFormat, QuantizedLinear } from './quantized-linear.js';
import { assertFourBitBlocksize } from './validate.js';

/** Tensors and metadata entries that store one quantized weight. */
export interface StoredQuantized {
  tensors: Record<string, Tensor | RawTensor>;
  metadata: Record<string, string>;
}

/** Options for reading a quantized weight. */
export interface ReadQuantizedOptions {
  /** Device of the weight's tensors (default 'cpu'). */
  device?: string;
}

const BNB_PREFIX = 'quant_state.bitsandbytes__';
const INT_METADATA_SUFFIX = '.quant';
const BNB_DTYPES: Partial<Record<string, DType>> = { float32: 'float32', float16: 'float16', bfloat16: 'bfloat16' };

/** Python's `repr` of a float (the number format `json.dumps` writes). */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, exponentText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  const sign = x < 0 ? '-' : '';
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
    const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
    const fraction = digits.slice(exponent + 1);
    return `${sign}${whole}.${fraction || '0'}`;
  }
  const rest = digits.slice(1);
  const expSign = exponent < 0 ? '-' : '+';
  return `${sign}${digits[0]}${rest ? `.${rest}` : ''}e${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

type PyValue = string | number | { float: number } | PyValue[];

/** `json.dumps` of a flat dict as Python writes it (", " and ": " separators). */
function pythonJson(entries: [string, PyValue][]): string {
  const value = (v: PyValue): string => {
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number') return String(v);
    if (Array.isArray(v)) return `[${v.map(value).join(', ')}]`;
    return pythonFloatRepr(v.float);
  };
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${value(v)}`).join(', ')}}`;
}

function raw(dtype: RawTensor['dtype'], shape: number[], t: Tensor): RawTensor {
  const values = t.toTypedArray();
  return { dtype, shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** The bitsandbytes tensors of a 4-bit weight stored under `name` (e.g. 'model.layers.0.mlp.up_proj.weight'). */
export function fourBitTensors(name: string, w: FourBitLinear): Record<string, Tensor | RawTensor> {
  const dq = w.doubleQuant;
  const state: [string, PyValue][] = [
    ['quant_type', w.format],
    ['blocksize', w.blocksize],
    ['dtype', w.sourceDType],
    ['shape', [w.outFeatures, w.inFeatures]],
  ];
  if (dq) state.push(['nested_blocksize', dq.nestedBlocksize], ['nested_dtype', 'float32'], ['nested_offset', { float: dq.offset }]);
  const json = new TextEncoder().encode(pythonJson(state));
  const tensors: Record<string, Tensor | RawTensor> = {
    [name]: raw('U8', [w.packed.numel, 1], w.packed),
    [`${name}.absmax`]: dq ? dq.codes : w.absmax!,
    [`${name}.quant_map`]: w.table,
    [`${name}.${BNB_PREFIX}${w.format}`]: { dtype: 'U8', shape: [json.length], data: json },
  };
  if (dq) {
    tensors[`${name}.nested_absmax`] = dq.nestedAbsmax;
    tensors[`${name}.nested_quant_map`] = dq.code;
  }
  return tensors;
}

/** The tensors and layout metadata of an integer-block weight stored under `name`. */
export function intBlockTensors(name: string, w: IntBlockLinear): StoredQuantized {
  const layout = {
    format: w.format,
    shape: w.shape,
    block_rows: w.blockRows,
    block_cols: w.blockCols,
    scale_dtype: w.scaleDType,
    codes: w.bits === 4 ? 'uint8, row-major element order, two codes per byte, even element in the high nibble' : 'uint8, one code per element, [out, in]',
    dequant: 'scales[b] * q + offsets[b], block b = (row / block_rows, col / block_cols), row-major',
  };
  return {
    tensors: {
      [name]: w.bits === 4 ? raw('U8', [w.codes.numel], w.codes) : raw('U8', [w.outFeatures, w.inFeatures], w.codes),
      [`${name}.scales`]: w.scaleTensor,
      [`${name}.offsets`]: w.offsetTensor,
    },
    metadata: { [`${name}${INT_METADATA_SUFFIX}`]: JSON.stringify(layout) },
  };
}

/** The tensors and metadata that store any quantized weight under `name`. */
export function quantizedTensors(name: string, w: QuantizedLinear): StoredQuantized {
  if (w instanceof FourBitLinear) return { tensors: fourBitTensors(name, w), metadata: {} };
  if (w instanceof IntBlockLinear) return intBlockTensors(name, w);
  throw new TypeError(`quantizedTensors: unsupported weight ${w.describe()}`);
}

/** Plain tensors and quantized weights to store, by weight name. */
export type QuantizedCheckpoint = Record<string, Tensor | QuantizedLinear>;

function expandEntries(entries: QuantizedCheckpoint, metadata: Record<string, string>): [SafetensorsInput, Record<string, string>] {
  const tensors: Record<string, Tensor | RawTensor> = {};
  const meta: Record<string, string> = { format: 'pt', ...metadata }; // transformers requires format "pt"
  const add = (key: string, value: Tensor | RawTensor): void => {
    if (key in tensors) throw new Error(`saveQuantized: two entries write the tensor name '${key}'`);
    tensors[key] = value;
  };
  for (const [name, value] of Object.entries(entries)) {
    if ((value as Tensor).isTensor) {
      add(name, value as Tensor);
      continue;
    }
    const stored = quantizedTensors(name, value as QuantizedLinear);
    for (const [k, v] of Object.entries(stored.tensors)) add(k, v);
    Object.assign(meta, stored.metadata);
  }
  return [tensors, meta];
}

/** A safetensors file (bytes) holding plain tensors and quantized weights. */
export function serializeQuantized(entries: QuantizedCheckpoint, metadata: Record<string, string> = {}): Uint8Array {
  const [tensors, meta] = expandEntries(entries, metadata);
  return serializeSafetensors(tensors, meta);
}

/** Writes a safetensors file (atomically) holding plain tensors and quantized weights. */
export function saveQuantized(path: string, entries: QuantizedCheckpoint, metadata: Record<string, string> = {}): void {
  const [tensors, meta] = expandEntries(entries, metadata);
  writeSafetensors(path, tensors, meta);
}

/** The quantized format stored under `name`, or null when `name` is a plain tensor or absent. */
export function quantizedFormatOf(reader: SafetensorsReader, name: string): QuantFormat | null {
  for (const t of ['nf4', 'fp4'] as const) if (reader.has(`${name}.${BNB_PREFIX}${t}`)) return t;
  const meta = reader.metadata[`${name}${INT_METADATA_SUFFIX}`];
  if (meta !== undefined) {
    const format = parseJson(meta, name, 'layout metadata')['format'];
    if (format === 'int4' || format === 'int8') return format;
    throw new Error(`loadQuantized: '${name}': layout metadata names unknown format ${JSON.stringify(format)}`);
  }
  return null;
}

function parseJson(text: string, name: string, what: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new Error(`loadQuantized: '${name}': the ${what} is not a JSON object: ${text.slice(0, 200)}`);
}

function positiveInt(v: unknown, field: string, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new Error(`loadQuantized: '${name}': ${field} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function weightShape(v: unknown, name: string): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) {
    throw new Error(`loadQuantized: '${name}': shape must be [out, in] (a linear weight), got ${JSON.stringify(v)}`);
  }
  return [positiveInt(v[0], 'shape[0]', name), positiveInt(v[1], 'shape[1]', name)];
}

/** Reads `tensorName`, checking its stored dtype and element count first. */
function readChecked(reader: SafetensorsReader, tensorName: string, dtypes: readonly string[], numel: number, device: string): Tensor {
  if (!reader.has(tensorName)) throw new Error(`loadQuantized: tensor '${tensorName}' is missing`);
  const e = reader.entries.get(tensorName)!;
  const count = e.shape.reduce((a, b) => a * b, 1);
  if (!dtypes.includes(e.dtype) || count !== numel) {
    throw new Error(`loadQuantized: tensor '${tensorName}' is ${e.dtype}[${e.shape.join(', ')}] (${count} elements); ` +
      `expected ${dtypes.join(' or ')} with ${numel} elements (corrupt or truncated?)`);
  }
  const t = reader.readTensor(tensorName, { device });
  if (t.rank === 1) return t;
  const flat = tensor(t.toTypedArray(), { shape: [numel], dtype: t.dtype, device });
  t.dispose();
  return flat;
}

/** Reads a bitsandbytes NF4 / FP4 weight stored under `name`. */
export function readFourBit(reader: SafetensorsReader, name: string, options: ReadQuantizedOptions = {}): FourBitLinear {
  const device = options.device ?? 'cpu';
  const format = quantizedFormatOf(reader, name);
  if (format !== 'nf4' && format !== 'fp4') throw new Error(`loadQuantized: '${name}' has no bitsandbytes quant_state entry`);
  const stateRaw = reader.readRaw(`${name}.${BNB_PREFIX}${format}`);
  if (stateRaw.dtype !== 'U8') throw new Error(`loadQuantized: '${name}.${BNB_PREFIX}${format}' must be U8, got ${stateRaw.dtype}`);
  const state = parseJson(new TextDecoder().decode(stateRaw.data), name, 'quant_state');
  if (state['quant_type'] !== format) {
    throw new Error(`loadQuantized: '${name}': quant_state says quant_type ${JSON.stringify(state['quant_type'])} but its key says ${format}`);
  }
  const blocksize = positiveInt(state['blocksize'], 'blocksize', name);
  assertFourBitBlocksize(blocksize, `loadQuantized: '${name}'`);
  const [outFeatures, inFeatures] = weightShape(state['shape'], name);
  const sourceDType = BNB_DTYPES[String(state['dtype'])];
  if (!sourceDType) throw new Error(`loadQuantized: '${name}': unsupported dtype ${JSON.stringify(state['dtype'])} in quant_state`);
  const n = outFeatures * inFeatures;
  const blocks = blockCount(n, blocksize);
  const nested = reader.has(`${name}.nested_absmax`);
  const parts = [] as Tensor[];
  const take = (t: Tensor): Tensor => (parts.push(t), t);
  try {
    const packed = take(readChecked(reader, name, ['U8'], packedLength(n), device));
    const table = take(readChecked(reader, `${name}.quant_map`, ['F32'], 16, device));
    let doubleQuant: DoubleQuantTensors | null = null;
    let absmax: Tensor | null = null;
    if (nested) {
      const nestedBlocksize = positiveInt(state['nested_blocksize'], 'nested_blocksize', name);
      const offset = state['nested_offset'];
      if (typeof offset !== 'number' || !Number.isFinite(offset)) {
        throw new Error(`loadQuantized: '${name}': nested_offset must be a finite number, got ${JSON.stringify(offset)}`);
      }
      if (state['nested_dtype'] !== undefined && state['nested_dtype'] !== 'float32') {
        throw new Error(`loadQuantized: '${name}': unsupported nested_dtype ${JSON.stringify(state['nested_dtype'])}`);
      }
      doubleQuant = {
        codes: take(readChecked(reader, `${name}.absmax`, ['U8'], blocks, device)),
        nestedAbsmax: take(readChecked(reader, `${name}.nested_absmax`, ['F32'], blockCount(blocks, nestedBlocksize), device)),
        code: take(readChecked(reader, `${name}.nested_quant_map`, ['F32'], 256, device)),
        offset: Math.fround(offset),
        nestedBlocksize,
      };
    } else {
      absmax = take(readChecked(reader, `${name}.absmax`, ['F32'], blocks, device));
    }
    return new FourBitLinear({ format, outFeatures, inFeatures, blocksize, packed, absmax, doubleQuant, table, sourceDType });
  } catch (e) {
    for (const t of parts) t.dispose();
    throw e;
  }
}

/** Reads an INT4 / INT8 block weight stored under `name`. */
export function readIntBlock(reader: SafetensorsReader, name: string, options: ReadQuantizedOptions = {}): IntBlockLinear {
  const device = options.device ?? 'cpu';
  const text = reader.metadata[`${name}${INT_METADATA_SUFFIX}`];
  if (text === undefined) throw new Error(`loadQuantized: '${name}' has no '${name}${INT_METADATA_SUFFIX}' layout metadata`);
  const layout = parseJson(text, name, 'layout metadata');
  const format = layout['format'];
  if (format !== 'int4' && format !== 'int8') throw new Error(`loadQuantized: '${name}': unknown integer format ${JSON.stringify(format)}`);
  const [outFeatures, inFeatures] = weightShape(layout['shape'], name);
  const blockRows = positiveInt(layout['block_rows'], 'block_rows', name);
  const blockCols = positiveInt(layout['block_cols'], 'block_cols', name);
  if (outFeatures % blockRows !== 0 || inFeatures % blockCols !== 0) {
    throw new Error(`loadQuantized: '${name}': blocks of ${blockRows} x ${blockCols} do not tile [${outFeatures}, ${inFeatures}]`);
  }
  const blocks = (outFeatures / blockRows) * (inFeatures / blockCols);
  const n = outFeatures * inFeatures;
  const parts = [] as Tensor[];
  const take = (t: Tensor): Tensor => (parts.push(t), t);
  try {
    const codes = take(readChecked(reader, name, ['U8'], format === 'int4' ? packedLength(n) : n, device));
    const scales = take(readChecked(reader, `${name}.scales`, ['F16', 'F32'], blocks, device));
    const offsets = take(readChecked(reader, `${name}.offsets`, ['F16', 'F32'], blocks, device));
    const shape = [outFeatures / blockRows, inFeatures / blockCols];
    const grid = (t: Tensor): Tensor => tensor(t.toTypedArray(), { shape, dtype: t.dtype, device });
    const weight = new IntBlockLinear({
      format, outFeatures, inFeatures, blockRows, blockCols, codes,
      scales: take(grid(scales)), offsets: take(grid(offsets)),
    });
    scales.dispose();
    offsets.dispose();
    return weight;
  } catch (e) {
    for (const t of parts) t.dispose();
    throw e;
  }
}

/** Reads the quantized weight stored under `name` (any format); throws when there is none. */
export function loadQuantized(reader: SafetensorsReader, name: string, options: ReadQuantizedOptions = {}): QuantizedLinear {
  const format = quantizedFormatOf(reader, name);
  if (format === 'nf4' || format === 'fp4') return readFourBit(reader, name, options);
  if (format === 'int4' || format === 'int8') return readIntBlock(reader, name, options);
  throw new Error(`loadQuantized: '${name}' is not a quantized weight in ${reader.label} ` +
    `(no '${name}.${BNB_PREFIX}nf4|fp4' tensor and no '${name}${INT_METADATA_SUFFIX}' metadata)`);
}

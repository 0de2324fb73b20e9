// Reading safetensors files tensor by tensor: the header is parsed and validated up
// front, then each tensor's bytes are read at their position on demand, so files far
// larger than memory can be opened.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { cpuBackend } from '../cpu/backend.js';
import { assertDType, isFloatDType, type DType, type TypedArray } from '../dtype.js';
import { bfloat16BitsToFloat32, float16BitsToFloat32 } from '../half.js';
import { encodeValues } from '../ops/creation.js';
import { contiguousStrides } from '../shape.js';
import { Storage } from '../storage.js';
import { Tensor } from '../tensor.js';
import {
  HOST_LITTLE_ENDIAN, SAFETENSORS_ITEM_SIZES, safetensorsError, swapBytes, TENSOR_DTYPE_OF,
  type RawTensor, type SafetensorsEntry,
} from './format.js';
import { parseHeader, readHeaderLength } from './header.js';

/** Options of `SafetensorsReader.readTensor`. */
export interface ReadTensorOptions {
  /** Device of the new tensor (default 'cpu'). */
  device?: string;
  /** Convert a float tensor to this float dtype (rounding to nearest even). */
  dtype?: DType;
}

/** Largest single read: readSync takes at most 2^31 - 1 bytes per call. */
const READ_CHUNK = 1 << 30;

/** Where a reader's bytes come from. */
type ByteSource = { kind: 'file'; fd: number } | { kind: 'bytes'; bytes: Uint8Array };

/**
 * A validated safetensors file or buffer. `open` keeps a file descriptor and reads each
 * tensor at its position when asked; call `close()` when done.
 */
export class SafetensorsReader {
  /** Tensors by name, in data-buffer order. */
  readonly entries: Map<string, SafetensorsEntry>;
  /** The header's `__metadata__` (empty when absent). */
  readonly metadata: Record<string, string>;
  private source: ByteSource | null;

  private constructor(
    /** The file path, or a label for in-memory data; errors start with it. */
    readonly label: string,
    source: ByteSource,
    /** Byte position of the data buffer (8 + header length). */
    readonly dataStart: number,
    entries: SafetensorsEntry[],
    metadata: Record<string, string>,
  ) {
    this.source = source;
    this.entries = new Map(entries.map((e) => [e.name, e]));
    this.metadata = metadata;
  }

  /** Opens and validates the file at `path`, reading only its header. */
  static open(path: string): SafetensorsReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw safetensorsError(path, `cannot open (${(e as Error).message})`);
    }
    try {
      const size = fstatSync(fd).size;
      const prefix = readAt(fd, 0, Math.min(8, size), path);
      const headerLength = readHeaderLength(prefix, size, path);
      const header = parseHeader(readAt(fd, 8, headerLength, path), size - 8 - headerLength, path);
      return new SafetensorsReader(path, { kind: 'file', fd }, 8 + headerLength, header.entries, header.metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Validates a whole safetensors file held in memory. `label` names it in errors. */
  static fromBytes(bytes: Uint8Array, label = 'in-memory buffer'): SafetensorsReader {
    if (!(bytes instanceof Uint8Array)) throw safetensorsError(label, 'fromBytes expects a Uint8Array');
    const headerLength = readHeaderLength(bytes.subarray(0, 8), bytes.length, label);
    const header = parseHeader(bytes.subarray(8, 8 + headerLength), bytes.length - 8 - headerLength, label);
    return new SafetensorsReader(label, { kind: 'bytes', bytes }, 8 + headerLength, header.entries, header.metadata);
  }

  /** Tensor names in data-buffer order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** True when the file holds a tensor called `name`. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The header entry of `name`; throws naming the file when there is none. */
  entry(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) throw safetensorsError(this.label, `no tensor named '${name}' (the file holds ${this.entries.size})`);
    return e;
  }

  /** The stored bytes of `name` with its dtype and shape, unconverted (a fresh copy). */
  readRaw(name: string): RawTensor {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape], data: this.readBytes(e) };
  }

  /**
   * `name` as a new contiguous tensor. F32/F64/F16/BF16/I32/I8/U8 keep their type, BOOL
   * becomes uint8 0/1, I16/U16/U32/I64/U64 become int32 (an error names the first value
   * outside the int32 range). 8-bit floats are only available through `readRaw`.
   */
  readTensor(name: string, options: ReadTensorOptions = {}): Tensor {
    const e = this.entry(name);
    const natural = TENSOR_DTYPE_OF[e.dtype];
    if (natural === null) throw safetensorsError(this.label, `dtype ${e.dtype} has no tensor dtype; use readRaw`, name);
    const target = options.dtype ?? natural;
    assertDType(target, `safetensors ${this.label}: tensor '${name}'`);
    if (target !== natural && !(isFloatDType(natural) && isFloatDType(target))) {
      throw safetensorsError(this.label, `cannot read ${e.dtype} as ${target}: the dtype option converts between float types only`, name);
    }
    let values = decodeElements(this.readBytes(e), e, this.label);
    if (target !== natural) values = encodeValues(floatValues(values, natural), target);
    const device = options.device ?? 'cpu';
    if (device !== 'cpu') return Tensor.fromTypedArray(values, e.shape, target, device);
    // The decoded array is fresh, so the tensor can own it without another copy.
    const storage = new Storage(cpuBackend, target, values.length, values);
    return new Tensor(storage, [...e.shape], contiguousStrides(e.shape), 0);
  }

  /** Releases the file descriptor (idempotent). Reads fail afterwards. */
  close(): void {
    if (this.source?.kind === 'file') closeSync(this.source.fd);
    this.source = null;
  }

  /** A fresh, zero-offset copy of an entry's bytes. */
  private readBytes(e: SafetensorsEntry): Uint8Array {
    const src = this.source;
    if (!src) throw safetensorsError(this.label, 'the reader is closed', e.name);
    const start = this.dataStart + e.begin;
    if (src.kind === 'bytes') return src.bytes.slice(start, this.dataStart + e.end);
    return readAt(src.fd, start, e.end - e.begin, this.label, e.name);
  }
}

/** Reads exactly `length` bytes at `position` into a new buffer. */
function readAt(fd: number, position: number, length: number, label: string, name?: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = readSync(fd, out, done, Math.min(READ_CHUNK, length - done), position + done);
    } catch (e) {
      throw safetensorsError(label, `read failed (${(e as Error).message})`, name);
    }
    if (n === 0) throw safetensorsError(label, `file ended after ${position + done} bytes (changed while open?)`, name);
    done += n;
  }
  return out;
}

/** Element values in their tensor representation (raw bits for F16/BF16), from fresh little-endian bytes. */
function decodeElements(bytes: Uint8Array, e: SafetensorsEntry, label: string): TypedArray {
  const size = SAFETENSORS_ITEM_SIZES[e.dtype];
  const n = bytes.length / size;
  if (e.dtype === 'U32' || e.dtype === 'I64' || e.dtype === 'U64') return narrowToInt32(bytes, e, label);
  if (!HOST_LITTLE_ENDIAN) swapBytes(bytes, size);
  const buf = bytes.buffer;
  switch (e.dtype) {
    case 'F32': return new Float32Array(buf, 0, n);
    case 'F64': return new Float64Array(buf, 0, n);
    case 'F16': case 'BF16': return new Uint16Array(buf, 0, n);
    case 'I32': return new Int32Array(buf, 0, n);
    case 'I8': return new Int8Array(buf, 0, n);
    case 'U8': return bytes;
    case 'BOOL':
      for (let i = 0; i < n; i++) bytes[i] = bytes[i] !== 0 ? 1 : 0;
      return bytes;
    case 'I16': return Int32Array.from(new Int16Array(buf, 0, n));
    case 'U16': return Int32Array.from(new Uint16Array(buf, 0, n));
    default: throw safetensorsError(label, `dtype ${e.dtype} has no tensor dtype; use readRaw`, e.name);
  }
}

/** U32/I64/U64 elements as int32, rejecting values outside [-2^31, 2^31). */
function narrowToInt32(bytes: Uint8Array, e: SafetensorsEntry, label: string): Int32Array {
  const wide = e.dtype !== 'U32';
  const signed = e.dtype === 'I64';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const size = SAFETENSORS_ITEM_SIZES[e.dtype];
  const out = new Int32Array(bytes.length / size);
  for (let i = 0; i < out.length; i++) {
    const lo = view.getInt32(i * size, true);
    const hi = wide ? view.getInt32(i * size + 4, true) : 0;
    // Fits when the high word is the sign extension of the low word (0 for unsigned types).
    const fits = signed ? hi === lo >> 31 : hi === 0 && lo >= 0;
    if (!fits) {
      const value = wide ? (BigInt(signed ? hi : hi >>> 0) << 32n) + BigInt(lo >>> 0) : BigInt(lo >>> 0);
      throw safetensorsError(label, `${e.dtype} value ${value} at element ${i} does not fit in int32`, e.name);
    }
    out[i] = lo;
  }
  return out;
}

/** Float values of a float tensor representation (decoding half-type bits). */
function floatValues(values: TypedArray, dtype: DType): Float64Array {
  const out = new Float64Array(values.length);
  const decode = dtype === 'bfloat16' ? bfloat16BitsToFloat32 : dtype === 'float16' ? float16BitsToFloat32 : null;
  if (decode) for (let i = 0; i < values.length; i++) out[i] = decode(values[i]!);
  else out.set(values);
  return out;
}

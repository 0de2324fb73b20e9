// Writing safetensors: everything is validated and laid out first, then the header and
// each tensor's bytes are produced one at a time (to a buffer or straight to a file).
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import {
  HOST_LITTLE_ENDIAN, isSafetensorsDType, isWellFormedString, MAX_HEADER_BYTES, METADATA_KEY,
  SAFETENSORS_DTYPE_OF, SAFETENSORS_ITEM_SIZES, safetensorsError, shapeNumel, swapBytes,
  type RawTensor, type SafetensorsDType,
} from './format.js';

/** Tensors to write, by name: library tensors, or raw stored bytes. */
export type SafetensorsInput = Record<string, Tensor | RawTensor> | ReadonlyMap<string, Tensor | RawTensor>;

/** One tensor placed in the data buffer. */
interface PlacedTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
  /** Produces the little-endian bytes when they are written. */
  bytes: () => Uint8Array;
}

/** A validated layout: the 8-byte length prefix plus padded header, and the tensors in order. */
interface Layout {
  head: Uint8Array;
  tensors: PlacedTensor[];
  dataLength: number;
}

function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && (value as { isTensor?: unknown }).isTensor === true;
}

function tensorBytes(t: Tensor): Uint8Array {
  const values = t.toTypedArray(); // row-major and contiguous, whatever the view's strides
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (!HOST_LITTLE_ENDIAN) swapBytes(bytes, values.BYTES_PER_ELEMENT);
  return bytes;
}

/** Validates one input and describes it (without reading its data yet). */
function describeInput(name: string, value: unknown, label: string): Omit<PlacedTensor, 'begin' | 'end'> {
  if (typeof name !== 'string' || name.length === 0 || name === METADATA_KEY || !isWellFormedString(name)) {
    throw safetensorsError(label, `invalid tensor name ${JSON.stringify(name)}: names must be non-empty, well-formed strings other than ${METADATA_KEY}`);
  }
  if (isTensor(value)) {
    if (value.isDisposed) throw safetensorsError(label, `tensor ${value.describe()} was disposed`, name);
    return { name, dtype: SAFETENSORS_DTYPE_OF[value.dtype], shape: [...value.shape], bytes: () => tensorBytes(value) };
  }
  const raw = value as Partial<RawTensor> | null;
  if (raw === null || typeof raw !== 'object') throw safetensorsError(label, 'expected a Tensor or { dtype, shape, data }', name);
  const { dtype, shape, data } = raw;
  if (!isSafetensorsDType(dtype)) throw safetensorsError(label, `unknown dtype ${JSON.stringify(dtype)}`, name);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw safetensorsError(label, `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`, name);
  }
  if (!(data instanceof Uint8Array)) throw safetensorsError(label, 'raw data must be a Uint8Array', name);
  const needed = shapeNumel(shape) * SAFETENSORS_ITEM_SIZES[dtype];
  if (data.length !== needed) {
    throw safetensorsError(label, `raw data has ${data.length} bytes but ${dtype}${formatShape(shape)} needs ${needed}`, name);
  }
  return { name, dtype, shape: [...shape], bytes: () => data };
}

function checkMetadata(metadata: unknown, label: string): Record<string, string> | undefined {
  if (metadata === undefined) return undefined;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw safetensorsError(label, 'metadata must be an object of string values');
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string' || !isWellFormedString(k) || !isWellFormedString(v)) {
      throw safetensorsError(label, `metadata entry '${k}' must map a well-formed string to a well-formed string`);
    }
  }
  return metadata as Record<string, string>;
}

/**
 * Validates the inputs and lays them out: tensors ordered by element size (largest
 * first) then name, so each starts at a multiple of its own element size given that
 * the header is padded with spaces to make the data buffer start at a multiple of 8.
 */
function planLayout(tensors: SafetensorsInput, metadata: Record<string, string> | undefined, label: string): Layout {
  if (tensors === null || typeof tensors !== 'object') throw safetensorsError(label, 'tensors must be an object or a Map of name -> tensor');
  const pairs = tensors instanceof Map ? [...(tensors as ReadonlyMap<string, unknown>)] : Object.entries(tensors);
  const described = pairs.map(([name, value]) => describeInput(name, value, label));
  const meta = checkMetadata(metadata, label);
  described.sort((a, b) => SAFETENSORS_ITEM_SIZES[b.dtype] - SAFETENSORS_ITEM_SIZES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let offset = 0;
  const placed = described.map((d): PlacedTensor => {
    const begin = offset;
    offset += shapeNumel(d.shape) * SAFETENSORS_ITEM_SIZES[d.dtype];
    return { ...d, begin, end: offset };
  });
  const parts: string[] = [];
  if (meta) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(meta)}`);
  for (const t of placed) {
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [t.begin, t.end] })}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_BYTES) throw safetensorsError(label, `header of ${headerLength} bytes exceeds the limit of ${MAX_HEADER_BYTES}`);
  const head = new Uint8Array(8 + headerLength).fill(0x20);
  new DataView(head.buffer).setUint32(0, headerLength, true); // high word stays 0 below the cap
  head.fill(0, 4, 8);
  head.set(json, 8);
  return { head, tensors: placed, dataLength: offset };
}

/** A complete safetensors file in memory. Accepts non-contiguous tensors and tensors on any device. */
export function serializeSafetensors(tensors: SafetensorsInput, metadata?: Record<string, string>): Uint8Array {
  const layout = planLayout(tensors, metadata, 'serialize');
  const out = new Uint8Array(layout.head.length + layout.dataLength);
  out.set(layout.head, 0);
  for (const t of layout.tensors) out.set(t.bytes(), layout.head.length + t.begin);
  return out;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}

/**
 * Writes a safetensors file atomically: the data goes to a temporary file in the same
 * directory, is flushed to disk, then renamed over `path`; on any error the temporary
 * file is removed and `path` is left untouched. Tensors are converted one at a time.
 */
export function writeSafetensors(path: string, tensors: SafetensorsInput, metadata?: Record<string, string>): void {
  const layout = planLayout(tensors, metadata, path);
  const dir = dirname(resolve(path));
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(temp, 'wx', 0o644);
    writeAll(fd, layout.head);
    for (const t of layout.tensors) writeAll(fd, t.bytes());
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(temp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // Never created, or already gone.
    }
    throw safetensorsError(path, `write failed (${(e as Error).message})`);
  }
  syncDirectory(dir);
}

/** Makes the rename durable where the platform allows syncing a directory. */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Not supported on every platform (e.g. Windows); the data itself is already synced.
  }
}

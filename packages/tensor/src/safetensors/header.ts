// Parsing and validating a safetensors header. Everything is checked against the size
// of the data buffer before any tensor data is read or allocated, so a hostile or
// damaged file fails with a clear message instead of a huge allocation.
import {
  isSafetensorsDType, MAX_HEADER_BYTES, METADATA_KEY, SAFETENSORS_DTYPES, SAFETENSORS_ITEM_SIZES,
  safetensorsError, shapeNumel, type SafetensorsEntry,
} from './format.js';

/** A validated header: tensors in data-buffer order, and the metadata. */
export interface ParsedHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
}

/**
 * The header length from the first 8 bytes of a file of `totalBytes` bytes, checked
 * against the size cap and the file size.
 */
export function readHeaderLength(prefix: Uint8Array, totalBytes: number, source: string): number {
  if (totalBytes < 8 || prefix.length < 8) {
    throw safetensorsError(source, `too short (${totalBytes} bytes) to hold the 8-byte header length`);
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw safetensorsError(source, `header length ${length} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  if (8 + Number(length) > totalBytes) {
    throw safetensorsError(source, `header length ${length} runs past the end of the data (${totalBytes} bytes in all)`);
  }
  return Number(length);
}

/** A short, non-recursive rendering of a JSON value for error messages. */
function preview(value: unknown): string {
  const one = (v: unknown): string => {
    if (Array.isArray(v)) return '[...]';
    if (v !== null && typeof v === 'object') return '{...}';
    if (typeof v === 'number') return String(v); // JSON.stringify writes Infinity (1e400 in a header) as null
    const s = JSON.stringify(v) ?? String(v);
    return s.length > 40 ? `${s.slice(0, 40)}...` : s;
  };
  if (!Array.isArray(value)) return one(value);
  const items = value.slice(0, 8).map(one);
  return `[${items.join(', ')}${value.length > 8 ? ', ...' : ''}]`;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

interface Container {
  isObject: boolean;
  keys: Set<string>;
  /** The key under which this container sits in its parent object (null at the root or in arrays). */
  owner: string | null;
  lastKey: string | null;
}

/**
 * Finds the first repeated key of any object in `text`, which must be valid JSON
 * (JSON.parse silently keeps the last of repeated keys). Returns the key and the key of
 * the object that holds it (null for the top level).
 */
export function findDuplicateKey(text: string): { key: string; owner: string | null } | null {
  const stack: Container[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.isObject && expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) return { key, owner: top.owner };
        top.keys.add(key);
        top.lastKey = key;
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      const owner = parent?.isObject ? parent.lastKey : null;
      stack.push({ isObject: c === 0x7b, keys: new Set(), owner, lastKey: null });
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1]?.isObject === true;
    }
  }
  return null;
}

function parseMetadata(value: unknown, source: string): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw safetensorsError(source, `${METADATA_KEY} must be an object of string values, got ${preview(value)}`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw safetensorsError(source, `${METADATA_KEY} value of key '${k}' must be a string, got ${preview(v)}`);
  }
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

function parseEntry(name: string, value: unknown, dataLength: number, source: string): SafetensorsEntry {
  const fail = (message: string): Error => safetensorsError(source, message, name);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw fail(`header entry must be an object with dtype, shape and data_offsets, got ${preview(value)}`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isSafetensorsDType(dtype)) throw fail(`unknown dtype ${preview(dtype)}; expected one of ${SAFETENSORS_DTYPES.join(', ')}`);
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw fail(`shape must be an array of non-negative integers, got ${preview(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isCount(offsets[0]) || !isCount(offsets[1]) || offsets[0] > offsets[1]) {
    throw fail(`data_offsets must be [begin, end] with integers 0 <= begin <= end, got ${preview(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) {
    throw fail(`data_offsets [${begin}, ${end}] lie outside the data buffer of ${dataLength} bytes`);
  }
  const needed = shapeNumel(shape) * SAFETENSORS_ITEM_SIZES[dtype];
  if (needed !== end - begin) {
    throw fail(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype}[${shape.join(', ')}] needs ${needed}`);
  }
  return { name, dtype, shape: [...shape], begin, end };
}

/** Checks that the entries tile the data buffer exactly: no overlaps, no holes, nothing left over. */
function checkCoverage(entries: SafetensorsEntry[], dataLength: number, source: string): void {
  let covered = 0;
  let previous: SafetensorsEntry | null = null;
  for (const e of entries) {
    if (e.begin < covered) {
      throw safetensorsError(source, `data_offsets [${e.begin}, ${e.end}] overlap tensor '${previous!.name}' [${previous!.begin}, ${previous!.end}]`, e.name);
    }
    if (e.begin > covered) {
      throw safetensorsError(source, `bytes [${covered}, ${e.begin}) of the data buffer belong to no tensor (a hole before this tensor)`, e.name);
    }
    covered = e.end;
    previous = e;
  }
  if (covered !== dataLength) {
    throw safetensorsError(source, `the data buffer has ${dataLength} bytes but the tensors cover only the first ${covered}`);
  }
}

/**
 * Parses and validates the header bytes of a file whose data buffer holds `dataLength`
 * bytes. Entries come back sorted by their position in the data buffer.
 */
export function parseHeader(headerBytes: Uint8Array, dataLength: number, source: string): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw safetensorsError(source, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw safetensorsError(source, `header must start with '{', got ${preview(text.slice(0, 20))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw safetensorsError(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw safetensorsError(source, 'header must be a JSON object');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate) {
    const where = duplicate.owner === null ? '' : ` inside '${duplicate.owner}'`;
    const what = duplicate.owner === null ? 'tensor name' : 'key';
    throw safetensorsError(source, `duplicate ${what} '${duplicate.key}'${where} in the header`);
  }
  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(value, source);
    else entries.push(parseEntry(name, value, dataLength, source));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkCoverage(entries, dataLength, source);
  return { entries, metadata };
}

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  registerBackend, SafetensorsReader, serializeSafetensors, storageArrayCtor, Tensor, tensor, transpose, writeSafetensors,
  type Backend, type DType, type RawTensor, type TypedArray,
} from '../src/index.js';
import { nonContiguousTensor, seededRandom } from '../src/testing.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'handmade.safetensors');
const workDir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** A file from a header text and data bytes; `length` overrides the 8-byte header length. */
function buildFile(header: string, data: ArrayLike<number> = [], length?: bigint): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(Array.from(data), 8 + h.length);
  return out;
}

/** A header with one entry per [name, dtype, shape, begin, end]. */
function headerOf(entries: [string, string, number[], number, number][], extra = ''): string {
  const parts = entries.map(([n, d, s, b, e]) => `${JSON.stringify(n)}:{"dtype":"${d}","shape":${JSON.stringify(s)},"data_offsets":[${b},${e}]}`);
  return `{${[...parts, ...(extra ? [extra] : [])].join(',')}}`;
}

const rawOf = (t: Tensor): number[] => Array.from(t.toTypedArray());

/** Random storage-level bit patterns for `dtype`; with `finite`, NaN and infinity patterns are replaced. */
function randomRaw(dtype: DType, n: number, seed: number, finite = false): TypedArray {
  const rnd = seededRandom(seed);
  const words = Uint32Array.from({ length: 2 * n }, () => Math.floor(rnd() * 2 ** 32));
  const out = new (storageArrayCtor(dtype))(n);
  new Uint8Array(out.buffer).set(new Uint8Array(words.buffer, 0, out.byteLength));
  if (finite) {
    const special = dtype === 'float16' ? (b: number) => (b & 0x7c00) === 0x7c00
      : dtype === 'bfloat16' ? (b: number) => (b & 0x7f80) === 0x7f80
        : dtype === 'float32' || dtype === 'float64' ? (v: number) => !Number.isFinite(v) : () => false;
    for (let i = 0; i < n; i++) if (special(out[i]!)) out[i] = i;
  }
  return out;
}

describe('hand-built fixture', () => {
  it('parses every entry, value and the metadata', () => {
    const r = SafetensorsReader.open(fixture);
    try {
      expect(r.names()).toEqual(['w', 'h', 'f', 'b', 'i', 's', 'e', 'q']);
      expect(r.metadata).toEqual({ format: 'pt', note: 'hand-built' });
      expect(r.entry('i')).toEqual({ name: 'i', dtype: 'I64', shape: [2, 1], begin: 17, end: 33 });
      expect(r.dataStart).toBe(8 + 497);
      expect(r.has('w')).toBe(true);
      expect(r.has('__metadata__')).toBe(false);
      const expected: [string, DType, number[], unknown][] = [
        ['w', 'float32', [2], [1.5, -2]],
        ['h', 'bfloat16', [2], [1, -0.5]],
        ['f', 'float16', [1], [65504]],
        ['b', 'uint8', [3], [1, 0, 1]],
        ['i', 'int32', [2, 1], [[-1], [2147483647]]],
        ['s', 'int8', [], -128],
        ['e', 'float32', [0, 3], []],
      ];
      for (const [name, dtype, shape, values] of expected) {
        const t = r.readTensor(name);
        expect([t.dtype, t.shape, t.toArray()]).toEqual([dtype, shape, values]);
      }
      expect(rawOf(r.readTensor('h'))).toEqual([0x3f80, 0xbf00]);
      expect(r.readRaw('q')).toEqual({ dtype: 'F8_E4M3', shape: [2], data: new Uint8Array([0x38, 0xc0]) });
      expect(() => r.readTensor('q')).toThrow(`safetensors ${fixture}: tensor 'q': dtype F8_E4M3 has no tensor dtype; use readRaw`);
      expect(() => r.readTensor('nope')).toThrow(`safetensors ${fixture}: no tensor named 'nope' (the file holds 8)`);
    } finally {
      r.close();
    }
    expect(() => r.readTensor('w')).toThrow("tensor 'w': the reader is closed");
    r.close(); // idempotent
  });

  it('reads the same from bytes in memory, at an unaligned position', () => {
    const file = readFileSync(fixture);
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    const r = SafetensorsReader.fromBytes(shifted.subarray(3), 'fixture');
    expect(r.readTensor('i').toArray()).toEqual([[-1], [2147483647]]);
    expect(r.readTensor('w').toArray()).toEqual([1.5, -2]);
  });
});

describe('round trips', () => {
  const dtypes: DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'int8', 'uint8'];
  const shapes = [[], [0], [1], [3, 5], [2, 1, 3], [4, 0, 2]];

  it('every dtype and shape, bit-exact, contiguous and not', () => {
    const inputs = new Map<string, Tensor>();
    const expected = new Map<string, number[]>();
    dtypes.forEach((dtype, di) => {
      shapes.forEach((shape, si) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const raw = randomRaw(dtype, n, 100 * di + si);
        inputs.set(`${dtype}/${si}`, Tensor.fromTypedArray(raw, shape, dtype));
        expected.set(`${dtype}/${si}`, Array.from(raw));
        if (shape.length > 0) {
          // The same values behind strides: every other element of a wider tensor.
          const finite = randomRaw(dtype, n, 7 + di + si, true);
          const values = Tensor.fromTypedArray(finite, [n], dtype).toFloat64Array();
          const view = nonContiguousTensor(values, shape, dtype);
          if (n > 1) expect(view.isContiguous).toBe(false);
          inputs.set(`${dtype}/${si}/strided`, view);
          expected.set(`${dtype}/${si}/strided`, Array.from(finite));
        }
      });
      const m = randomRaw(dtype, 6, 50 + di);
      inputs.set(`${dtype}/transposed`, transpose(Tensor.fromTypedArray(m, [2, 3], dtype)));
      expected.set(`${dtype}/transposed`, [0, 3, 1, 4, 2, 5].map((i) => m[i]!));
    });
    const bytes = serializeSafetensors(inputs, { kind: 'round trip' });
    const r = SafetensorsReader.fromBytes(bytes);
    expect(r.metadata).toEqual({ kind: 'round trip' });
    expect(new Set(r.names())).toEqual(new Set(inputs.keys()));
    for (const [name, t] of inputs) {
      const back = r.readTensor(name);
      expect([back.dtype, back.shape]).toEqual([t.dtype, t.shape]);
      expect(rawOf(back)).toEqual(expected.get(name));
    }
  });

  it('lays data out aligned, with a space-padded header', () => {
    const bytes = serializeSafetensors({
      a: tensor([1], { dtype: 'uint8' }), b: tensor([1, 2, 3], { dtype: 'float64' }),
      c: tensor([1, 2, 3], { dtype: 'bfloat16' }), d: tensor([1], { dtype: 'int32' }),
    });
    const r = SafetensorsReader.fromBytes(bytes);
    expect(r.names()).toEqual(['b', 'd', 'c', 'a']); // element size descending, then name
    expect(r.dataStart % 8).toBe(0);
    const sizes: Record<string, number> = { F64: 8, I32: 4, BF16: 2, U8: 1 };
    for (const e of r.entries.values()) expect((r.dataStart + e.begin) % sizes[e.dtype]!).toBe(0);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(text).toMatch(/^\{.*\} *$/);
    expect(headerLength % 8).toBe(0);
  });

  it('raw tensors of every stored dtype, and conversions to int32', () => {
    const raw = (dtype: RawTensor['dtype'], shape: number[], bytes: number[]): RawTensor => ({ dtype, shape, data: new Uint8Array(bytes) });
    const le = (value: bigint, size: number): number[] => Array.from({ length: size }, (_, i) => Number((BigInt.asUintN(size * 8, value) >> BigInt(8 * i)) & 0xffn));
    const inputs: Record<string, RawTensor> = {
      e5: raw('F8_E5M2', [3], [0x3c, 0xc0, 0x7c]),
      i64: raw('I64', [3], [...le(-5n, 8), ...le(-(2n ** 31n), 8), ...le(2n ** 31n - 1n, 8)]),
      u64: raw('U64', [1], le(7n, 8)),
      u32: raw('U32', [2], [...le(0n, 4), ...le(2n ** 31n - 1n, 4)]),
      i16: raw('I16', [2], [...le(-32768n, 2), ...le(123n, 2)]),
      u16: raw('U16', [1], le(65535n, 2)),
      bool: raw('BOOL', [3], [0, 1, 7]),
    };
    const r = SafetensorsReader.fromBytes(serializeSafetensors(inputs));
    for (const [name, t] of Object.entries(inputs)) expect(r.readRaw(name)).toEqual(t);
    expect(r.readTensor('i64').toArray()).toEqual([-5, -(2 ** 31), 2 ** 31 - 1]);
    expect(r.readTensor('u64').toArray()).toEqual([7]);
    expect(r.readTensor('u32').toArray()).toEqual([0, 2 ** 31 - 1]);
    expect(r.readTensor('i16').toArray()).toEqual([-32768, 123]);
    expect(r.readTensor('u16').toArray()).toEqual([65535]);
    expect(r.readTensor('bool').toArray()).toEqual([0, 1, 1]);
    expect(r.readTensor('i64').dtype).toBe('int32');

    const tooBig: [RawTensor, string][] = [
      [raw('I64', [2], [...le(1n, 8), ...le(2n ** 31n, 8)]), 'I64 value 2147483648 at element 1 does not fit in int32'],
      [raw('I64', [1], le(-(2n ** 31n) - 1n, 8)), 'I64 value -2147483649 at element 0'],
      [raw('U64', [1], le(2n ** 63n, 8)), 'U64 value 9223372036854775808 at element 0'],
      [raw('U32', [1], le(2n ** 31n, 4)), 'U32 value 2147483648 at element 0'],
    ];
    for (const [t, message] of tooBig) {
      const rr = SafetensorsReader.fromBytes(serializeSafetensors({ x: t }), 'big');
      expect(() => rr.readTensor('x')).toThrow(`safetensors big: tensor 'x': ${message}`);
    }
  });

  it('converts floats with the dtype option and rejects other conversions', () => {
    const r = SafetensorsReader.fromBytes(serializeSafetensors({
      bf: tensor([1, -0.5, 3.25], { dtype: 'bfloat16' }),
      f: tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8, 65536 * 2, 1 + 2 ** -11, 1 + 3 * 2 ** -11], { dtype: 'float32' }),
      i: tensor([1, 2], { dtype: 'int32' }),
    }));
    const up = r.readTensor('bf', { dtype: 'float64' });
    expect([up.dtype, up.toArray()]).toEqual(['float64', [1, -0.5, 3.25]]);
    // Round to nearest even: in bfloat16 (ulp 2^-7 at 1) 1 + 2^-8 is a tie that goes to 1 and
    // 1 + 3 * 2^-8 a tie that goes up; in float16 (ulp 2^-10) the same holds for 2^-11 and 3 * 2^-11.
    expect(r.readTensor('f', { dtype: 'bfloat16' }).toArray()).toEqual([1, 1 + 2 ** -6, 131072, 1, 1]);
    expect(r.readTensor('f', { dtype: 'float16' }).toArray()).toEqual([1 + 2 ** -8, 1 + 3 * 2 ** -8, Infinity, 1, 1 + 2 ** -9]);
    expect(r.readTensor('i', { dtype: 'int32' }).toArray()).toEqual([1, 2]);
    expect(() => r.readTensor('i', { dtype: 'float32' })).toThrow("tensor 'i': cannot read I32 as float32: the dtype option converts between float types only");
    expect(() => r.readTensor('f', { dtype: 'int8' })).toThrow('cannot read F32 as int8');
    expect(() => r.readTensor('f', { dtype: 'float8' as DType })).toThrow("unknown dtype 'float8'");
  });

  it('writes files atomically and reads them tensor by tensor', () => {
    const path = join(workDir, 'model.safetensors');
    const a = tensor([[1, 2], [3, 4]], { dtype: 'bfloat16' });
    writeSafetensors(path, { a, 'layers.0.w': tensor([7], { dtype: 'int8' }) }, { format: 'pt' });
    writeSafetensors(path, new Map([['a', transpose(a)]])); // overwrite
    const r = SafetensorsReader.open(path);
    try {
      expect(r.names()).toEqual(['a']);
      expect(r.metadata).toEqual({});
      expect(r.readTensor('a', { dtype: 'float32' }).toArray()).toEqual([[1, 3], [2, 4]]);
    } finally {
      r.close();
    }
    expect(readdirSync(workDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('removes the temporary file when writing fails', () => {
    // A device whose memory cannot be read back makes the write fail midway.
    const failing: Backend = {
      name: 'unreadable', allocate: () => null, free: () => {}, fromHost: () => null,
      toHost: () => { throw new Error('device lost'); }, synchronize: () => {},
    };
    registerBackend(failing);
    const dir = join(workDir, 'failing');
    mkdirSync(dir);
    const target = join(dir, 'out.safetensors');
    const bad = Tensor.fromTypedArray(new Float32Array(2), [2], 'float32', 'unreadable');
    expect(() => writeSafetensors(target, { a: tensor([1]), z: bad })).toThrow(`safetensors ${target}: write failed (device lost)`);
    expect(readdirSync(dir)).toEqual([]);
    // The rename fails when the target is a non-empty directory; nothing is left behind.
    const blocked = join(dir, 'blocked');
    mkdirSync(blocked);
    writeFileSync(join(blocked, 'keep'), 'x');
    expect(() => writeSafetensors(blocked, { a: tensor([1]) })).toThrow(`safetensors ${blocked}: write failed`);
    expect(readdirSync(dir)).toEqual(['blocked']);
  });

  it('validates what it writes', () => {
    const one = tensor([1]);
    expect(() => serializeSafetensors({ '': one })).toThrow('safetensors serialize: invalid tensor name "": names must be non-empty');
    expect(() => serializeSafetensors({ __metadata__: one })).toThrow('invalid tensor name "__metadata__"');
    expect(() => serializeSafetensors({ ['a\uD800']: one })).toThrow('well-formed');
    expect(() => serializeSafetensors({ x: { dtype: 'F32', shape: [2], data: new Uint8Array(7) } })).toThrow("tensor 'x': raw data has 7 bytes but F32[2] needs 8");
    expect(() => serializeSafetensors({ x: { dtype: 'F4', shape: [2], data: new Uint8Array(1) } as unknown as RawTensor })).toThrow(`tensor 'x': unknown dtype "F4"`);
    expect(() => serializeSafetensors({ x: { dtype: 'U8', shape: [-1], data: new Uint8Array(0) } })).toThrow("tensor 'x': shape must be an array of non-negative integers");
    expect(() => serializeSafetensors({ x: 5 as unknown as Tensor })).toThrow("tensor 'x': expected a Tensor or { dtype, shape, data }");
    const gone = tensor([1]);
    gone.dispose();
    expect(() => serializeSafetensors({ g: gone })).toThrow("tensor 'g': tensor float32[1] on cpu was disposed");
    expect(() => serializeSafetensors({ x: one }, { n: 1 as unknown as string })).toThrow("metadata entry 'n' must map a well-formed string");
    expect(() => writeSafetensors(join(workDir, 'no-dir', 'x.safetensors'), { x: one })).toThrow('write failed');
  });
});

describe('malformed files are rejected before reading data', () => {
  const f32x2: [string, string, number[], number, number] = ['w', 'F32', [2], 0, 8];
  const eight = new Array<number>(8).fill(0);
  const cases: [string, Uint8Array, string][] = [
    ['too short', new Uint8Array(5), 'too short (5 bytes) to hold the 8-byte header length'],
    ['length past the end', buildFile('{}', [], 1000n), 'header length 1000 runs past the end of the data (10 bytes in all)'],
    ['length over the cap', buildFile('{}', [], 2n ** 40n), `header length ${2 ** 40} exceeds the limit of 100000000 bytes`],
    ['huge u64 length', buildFile('{}', [], 2n ** 64n - 1n), 'header length 18446744073709551615 exceeds the limit of 100000000 bytes'],
    ['not UTF-8', (() => { const b = buildFile('{"a" }'); b[10] = 0xff; return b; })(), 'header is not valid UTF-8'],
    ['not an object', buildFile('[1]'), "header must start with '{', got \"[1]\""],
    ['leading space', buildFile(' {}'), "header must start with '{'"],
    ['not JSON', buildFile('{"w":'), 'header is not valid JSON'],
    ['entry not an object', buildFile('{"w":[1]}'), "tensor 'w': header entry must be an object with dtype, shape and data_offsets, got [1]"],
    ['unknown dtype', buildFile(headerOf([['w', 'F4', [2], 0, 8]]), eight), "tensor 'w': unknown dtype \"F4\"; expected one of"],
    ['missing dtype', buildFile('{"w":{"shape":[2],"data_offsets":[0,8]}}', eight), "tensor 'w': unknown dtype undefined"],
    ['negative dim', buildFile(headerOf([['w', 'F32', [-2], 0, 8]]), eight), "tensor 'w': shape must be an array of non-negative integers, got [-2]"],
    ['fractional dim', buildFile(headerOf([['w', 'F32', [1.5], 0, 8]]), eight), "tensor 'w': shape must be an array of non-negative integers, got [1.5]"],
    ['shape not an array', buildFile('{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}', eight), `tensor 'w': shape must be an array of non-negative integers, got "2"`],
    ['reversed offsets', buildFile(headerOf([['w', 'F32', [2], 8, 0]]), eight), "tensor 'w': data_offsets must be [begin, end] with integers 0 <= begin <= end, got [8, 0]"],
    ['one offset', buildFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[8]}}', eight), "tensor 'w': data_offsets must be [begin, end] with integers 0 <= begin <= end, got [8]"],
    ['string offsets', buildFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}}', eight), `tensor 'w': data_offsets must be [begin, end] with integers 0 <= begin <= end, got ["0", "8"]`],
    ['unsafe offsets', buildFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,1e300]}}', eight), "tensor 'w': data_offsets must be [begin, end] with integers 0 <= begin <= end, got [0, 1e+300]"],
    ['size mismatch', buildFile(headerOf([['w', 'F32', [3], 0, 8]]), eight), "tensor 'w': data_offsets [0, 8] hold 8 bytes but F32[3] needs 12"],
    ['huge shape', buildFile(headerOf([['w', 'F32', [2 ** 40, 2 ** 40], 0, 8]]), eight), "tensor 'w': data_offsets [0, 8] hold 8 bytes but F32[1099511627776, 1099511627776] needs 4.835703278458517e+24"],
    ['out of range', buildFile(headerOf([['w', 'F32', [4], 0, 16]]), eight), "tensor 'w': data_offsets [0, 16] lie outside the data buffer of 8 bytes"],
    ['overlap', buildFile(headerOf([f32x2, ['v', 'F32', [1], 4, 8]]), eight), "tensor 'v': data_offsets [4, 8] overlap tensor 'w' [0, 8]"],
    ['hole', buildFile(headerOf([['w', 'F32', [1], 0, 4], ['v', 'U8', [2], 6, 8]]), eight), "tensor 'v': bytes [4, 6) of the data buffer belong to no tensor"],
    ['leading hole', buildFile(headerOf([['w', 'F32', [1], 4, 8]]), eight), "tensor 'w': bytes [0, 4)"],
    ['trailing bytes', buildFile(headerOf([['w', 'F32', [1], 0, 4]]), eight), 'the data buffer has 8 bytes but the tensors cover only the first 4'],
    ['no tensors but data', buildFile('{}', [1, 2]), 'the data buffer has 2 bytes but the tensors cover only the first 0'],
    ['duplicate name', buildFile(headerOf([f32x2, ['w', 'F32', [2], 0, 8]]), eight), "duplicate tensor name 'w' in the header"],
    ['duplicate escaped name', buildFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"\\u0077":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight), "duplicate tensor name 'w'"],
    ['duplicate field', buildFile('{"w":{"dtype":"F32","dtype":"U8","shape":[2],"data_offsets":[0,8]}}', eight), "duplicate key 'dtype' inside 'w' in the header"],
    ['metadata not an object', buildFile('{"__metadata__":["a"]}'), '__metadata__ must be an object of string values, got ["a"]'],
    ['metadata number', buildFile('{"__metadata__":{"epoch":3}}'), "__metadata__ value of key 'epoch' must be a string, got 3"],
  ];

  it.each(cases)('%s', (_, bytes, message) => {
    expect(() => SafetensorsReader.fromBytes(bytes, 'case.safetensors')).toThrow(`safetensors case.safetensors: ${message}`);
  });

  it('names the file when opened from disk', () => {
    const path = join(workDir, 'bad.safetensors');
    writeFileSync(path, buildFile(headerOf([['w', 'F32', [3], 0, 8]]), eight));
    expect(() => SafetensorsReader.open(path)).toThrow(`safetensors ${path}: tensor 'w': data_offsets [0, 8] hold 8 bytes but F32[3] needs 12`);
    const missing = join(workDir, 'missing.safetensors');
    expect(() => SafetensorsReader.open(missing)).toThrow(`safetensors ${missing}: cannot open (ENOENT`);
    expect(() => SafetensorsReader.open(workDir)).toThrow(`safetensors ${workDir}: read failed (EISDIR`);
    const truncated = join(workDir, 'truncated.safetensors');
    writeFileSync(truncated, readFileSync(fixture).subarray(0, 300));
    expect(() => SafetensorsReader.open(truncated)).toThrow('header length 497 runs past the end of the data (300 bytes in all)');
  });

  it('accepts an empty file with only metadata, and zero-length tensors anywhere', () => {
    const r = SafetensorsReader.fromBytes(buildFile('{"__metadata__":{"a":"b"}}'));
    expect([r.names(), r.metadata]).toEqual([[], { a: 'b' }]);
    const z = SafetensorsReader.fromBytes(buildFile(headerOf([['z', 'F32', [0], 4, 4], ['w', 'F32', [1], 0, 4], ['y', 'U8', [0, 9], 4, 4]]), [0, 0, 0x80, 0x3f]));
    expect(z.names()).toEqual(['w', 'z', 'y']);
    expect(z.readTensor('w').toArray()).toEqual([1]);
    expect(z.readTensor('y').shape).toEqual([0, 9]);
  });
});

describe('fuzzing', () => {
  it('mutated files either parse consistently or fail with a clean error', () => {
    const valid = serializeSafetensors({
      w: tensor([[1, 2, 3], [4, 5, 6]]), h: tensor([1, 2], { dtype: 'bfloat16' }), i: tensor([3, -4], { dtype: 'int32' }),
      e: tensor([], { shape: [0], dtype: 'int8' }), q: { dtype: 'F8_E5M2', shape: [2], data: new Uint8Array([1, 2]) },
      l: { dtype: 'I64', shape: [1], data: new Uint8Array([9, 0, 0, 0, 0, 0, 0, 0]) },
    }, { note: 'fuzz' });
    const headerEnd = 8 + new DataView(valid.buffer).getUint32(0, true);
    const rnd = seededRandom(2024);
    const int = (n: number): number => Math.floor(rnd() * n);
    const structural = '{}[]":,0123456789-.eE \\';
    let parsed = 0;
    const unclean: string[] = [];
    for (let iter = 0; iter < 3000; iter++) {
      let bytes = valid.slice();
      const kind = iter % 5;
      if (kind === 0) {
        for (let k = 1 + int(4); k > 0; k--) bytes[int(headerEnd)] = int(256); // random bytes, mostly in the header
      } else if (kind === 1) {
        bytes = bytes.slice(0, int(bytes.length));
      } else if (kind === 2) {
        const view = new DataView(bytes.buffer);
        const choice = int(3);
        if (choice === 0) view.setUint32(0, view.getUint32(0, true) + int(17) - 8, true);
        else if (choice === 1) view.setUint32(int(2) * 4, int(2 ** 32), true);
        else bytes[int(8)] = int(256);
      } else if (kind === 3) {
        for (let k = 1 + int(3); k > 0; k--) bytes[8 + int(headerEnd - 8)] = structural.charCodeAt(int(structural.length));
      } else {
        const at = 8 + int(headerEnd - 8); // insert or delete one header byte
        bytes = rnd() < 0.5
          ? Uint8Array.from([...bytes.subarray(0, at), structural.charCodeAt(int(structural.length)), ...bytes.subarray(at)])
          : Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
      }
      try {
        const r = SafetensorsReader.fromBytes(bytes, 'fuzz');
        parsed += 1;
        for (const name of r.names()) {
          const e = r.entry(name);
          try {
            const t = r.readTensor(name);
            if (t.shape.join() !== e.shape.join()) unclean.push(`iteration ${iter}: '${name}' read with the wrong shape`);
          } catch (err) {
            if (!(err instanceof Error) || !err.message.startsWith('safetensors fuzz: ')) unclean.push(`iteration ${iter}: ${String(err)}`);
            else if (r.readRaw(name).data.length !== e.end - e.begin) unclean.push(`iteration ${iter}: raw length`);
          }
        }
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('safetensors fuzz: ')) unclean.push(`iteration ${iter}: ${String(err)}`);
      }
    }
    expect(unclean).toEqual([]);
    expect(parsed).toBeGreaterThan(0); // some mutations (e.g. in padding or values) stay valid
  }, 10_000);
});

// Safetensors headers damaged at the JSON level (values of the wrong type, huge and negative
// numbers, deep nesting, dropped keys, long values), re-framed with a correct length prefix so
// the damage reaches the header parser: every copy either opens consistently or fails with an
// error that names the source, before any tensor data is allocated.
import { describe, expect, it } from 'vitest';
import { memoryStats, SafetensorsReader, serializeSafetensors, tensor } from '../src/index.js';
import { fuzzJson, JSON_MUTATIONS } from '../src/testing.js';

/** A file made of the 8-byte length prefix, `header` and `data`. */
function frame(header: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

const valid = serializeSafetensors({
  w: tensor([[1, 2, 3], [4, 5, 6]]), h: tensor([1, 2], { dtype: 'bfloat16' }), i: tensor([3, -4], { dtype: 'int32' }),
  e: tensor([], { shape: [0], dtype: 'int8' }), q: { dtype: 'F8_E5M2', shape: [2], data: new Uint8Array([1, 2]) },
}, { note: 'fuzz' });
const headerLength = new DataView(valid.buffer).getUint32(0, true);
const headerText = new TextDecoder().decode(valid.subarray(8, 8 + headerLength)).trimEnd();
const data = valid.slice(8 + headerLength);

describe('safetensors header fuzzing at the JSON level', () => {
  it('damaged headers open consistently or fail naming the source, without allocating tensors', () => {
    const before = memoryStats('cpu');
    const report = fuzzJson(headerText, { iterations: 3000, seed: 7, kinds: JSON_MUTATIONS.filter((k) => k !== 'bytes' && k !== 'truncate') }, (header) => {
      const r = SafetensorsReader.fromBytes(frame(header, data), 'fuzz');
      for (const name of r.names()) {
        const e = r.entry(name);
        if (r.readRaw(name).data.length !== e.end - e.begin) return `'${name}': raw bytes do not match its offsets`;
        try {
          const t = r.readTensor(name);
          const ok = t.shape.join() === e.shape.join();
          t.dispose();
          if (!ok) return `'${name}' read with the wrong shape`;
        } catch (error) {
          if (!(error instanceof Error) || !error.message.startsWith('safetensors fuzz: ')) throw error;
        }
      }
      return null;
    }, (error) => error instanceof Error && error.message.startsWith('safetensors fuzz: '));
    expect(report.problems).toEqual([]);
    expect(report.accepted).toBeGreaterThan(50);
    expect(report.rejected).toBeGreaterThan(1000);
    expect(memoryStats('cpu')).toEqual(before);
  });

  const entry = '"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}';
  const eight = new Uint8Array(8);
  const hostile: [string, string, string][] = [
    ['shape of 2^53 + 1', '{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}',
      "tensor 'w': shape must be an array of non-negative integers, got [9007199254740992]"],
    ['shape of 1e400', '{"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,8]}}', "tensor 'w': shape must be an array of non-negative integers, got [Infinity]"],
    ['negative offset', '{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}', "tensor 'w': data_offsets must be [begin, end] with integers 0 <= begin <= end, got [-8, 0]"],
    ['deeply nested shape', `{"w":{"dtype":"F32","shape":${'['.repeat(20_000)}${']'.repeat(20_000)},"data_offsets":[0,8]}}`,
      "tensor 'w': shape must be an array of non-negative integers, got [[...]]"],
    ['deeply nested metadata', `{"__metadata__":{"a":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}},${entry}}`,
      "__metadata__ value of key 'a' must be a string, got {...}"],
    ['a million dimensions of size 1', `{"w":{"dtype":"F32","shape":[${new Array(1_000_000).fill(1).join(',')}],"data_offsets":[0,8]}}`,
      "tensor 'w': data_offsets [0, 8] hold 8 bytes but F32"],
    ['dtype as an object', '{"w":{"dtype":{"F32":1},"shape":[2],"data_offsets":[0,8]}}', "tensor 'w': unknown dtype {...}"],
    ['inherited dtype name', '{"w":{"dtype":"constructor","shape":[2],"data_offsets":[0,8]}}', `tensor 'w': unknown dtype "constructor"`],
  ];
  it.each(hostile)('%s', (_what, header, message) => {
    const bytes = frame(new TextEncoder().encode(header), eight);
    expect(() => SafetensorsReader.fromBytes(bytes, 'hostile')).toThrow(`safetensors hostile: ${message}`);
  });
});

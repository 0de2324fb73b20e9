// Checks of the in-memory ONNX writer: the exact bytes of small messages, and (when
// onnxruntime-node is installed in bench/.peers/) that the graphs the suites build load and
// compute what a float64 loop computes, including MatMulNBits' packed 4-bit layout.
//
//   node --test bench/peers/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { singleNodeModel } from './onnx-graph.mjs';
import { loadOnnxRuntime } from './load.mjs';

const ort = loadOnnxRuntime();

/** Reads the top-level fields of a protobuf message: [field, wireType, value] (varint as BigInt). */
function fields(bytes) {
  const out = [];
  let at = 0;
  const varint = () => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (at < bytes.length) {
    const key = Number(varint());
    const [field, wire] = [key >> 3, key & 7];
    if (wire === 0) out.push([field, wire, varint()]);
    else if (wire === 2) {
      const n = Number(varint());
      out.push([field, wire, bytes.subarray(at, at + n)]);
      at += n;
    } else if (wire === 5) {
      out.push([field, wire, bytes.subarray(at, at + 4)]);
      at += 4;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

test('the model carries ir_version, the graph and both opsets', () => {
  const model = singleNodeModel({
    opType: 'MatMulNBits', domain: 'com.microsoft', attributes: { K: 300, N: 2, accuracy_level: 0, ratio: 0.5 },
    inputs: [{ name: 'A', type: 'float32', shape: [1, 300] }],
    outputs: [{ name: 'Y', type: 'float32', shape: [1, 2] }],
  });
  const top = fields(model);
  assert.deepEqual(top[0], [1, 0, 8n]); // ir_version
  const opsets = top.filter(([f]) => f === 8).map(([, , v]) => fields(v));
  assert.deepEqual(opsets.map((o) => [new TextDecoder().decode(o[0][2]), o[1][2]]), [['', 17n], ['com.microsoft', 1n]]);
  const graph = fields(top.find(([f]) => f === 7)[2]);
  const node = fields(graph.find(([f]) => f === 1)[2]);
  assert.equal(new TextDecoder().decode(node.find(([f]) => f === 4)[2]), 'MatMulNBits');
  assert.equal(new TextDecoder().decode(node.find(([f]) => f === 7)[2]), 'com.microsoft');
  const attrs = node.filter(([f]) => f === 5).map(([, , v]) => fields(v));
  const k = attrs.find((a) => new TextDecoder().decode(a[0][2]) === 'K');
  assert.deepEqual(k.slice(1), [[3, 0, 300n], [20, 0, 2n]]); // i = 300 (two varint bytes), type INT
  const ratio = attrs.find((a) => new TextDecoder().decode(a[0][2]) === 'ratio');
  assert.equal(new DataView(ratio[1][2].buffer, ratio[1][2].byteOffset).getFloat32(0, true), 0.5);
  assert.deepEqual(ratio[2], [20, 0, 1n]); // type FLOAT
});

test('onnxruntime runs a MatMul with B as an initializer (odd sizes)', { skip: ort.skipped }, async () => {
  const [m, k, n] = [3, 5, 7];
  const a = Float32Array.from({ length: m * k }, (_, i) => ((i * 37) % 11) - 5);
  const b = Float32Array.from({ length: k * n }, (_, i) => ((i * 13) % 7) - 3);
  const model = singleNodeModel({
    opType: 'MatMul',
    inputs: [{ name: 'A', type: 'float32', shape: [m, k] }],
    initializers: [{ name: 'B', type: 'float32', shape: [k, n], data: b }],
    outputs: [{ name: 'Y', type: 'float32', shape: [m, n] }],
  });
  const session = await ort.ort.InferenceSession.create(model);
  const y = (await session.run({ A: new ort.ort.Tensor('float32', a, [m, k]) })).Y.data;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
      assert.equal(y[i * n + j], s);
    }
  }
  await session.release();
});

test('onnxruntime MatMulNBits reads codes low nibble first, blocks along K, zero point 8', { skip: ort.skipped }, async () => {
  const [m, k, n, block] = [2, 64, 3, 32];
  const codes = Uint8Array.from({ length: n * k }, (_, i) => (i * 7 + 3) % 16);
  const scales = Float32Array.from({ length: (n * k) / block }, (_, i) => 0.25 * (i + 1));
  const packed = new Uint8Array((n * k) / 2);
  for (let i = 0; i < packed.length; i++) packed[i] = codes[2 * i] | (codes[2 * i + 1] << 4);
  const x = Float32Array.from({ length: m * k }, (_, i) => ((i * 5) % 9) - 4);
  const model = singleNodeModel({
    opType: 'MatMulNBits', domain: 'com.microsoft',
    attributes: { K: k, N: n, bits: 4, block_size: block, accuracy_level: 0 },
    inputs: [{ name: 'A', type: 'float32', shape: [m, k] }],
    initializers: [
      { name: 'B', type: 'uint8', shape: [n, k / block, block / 2], data: packed },
      { name: 'scales', type: 'float32', shape: [(n * k) / block], data: scales },
    ],
    outputs: [{ name: 'Y', type: 'float32', shape: [m, n] }],
  });
  const session = await ort.ort.InferenceSession.create(model);
  const y = (await session.run({ A: new ort.ort.Tensor('float32', x, [m, k]) })).Y.data;
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += x[r * k + p] * (codes[c * k + p] - 8) * scales[(c * k + p) / block | 0];
      assert.ok(Math.abs(y[r * n + c] - s) <= 1e-4 * Math.max(1, Math.abs(s)), `y[${r}, ${c}] = ${y[r * n + c]}, expected ${s}`);
    }
  }
  await session.release();
});

// A minimal protobuf writer for ONNX models with one node, so the suites can hand
// onnxruntime-node a graph built in memory (a Uint8Array) instead of a file. Only the fields
// used here are written; their numbers are those of onnx.proto (ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto, TypeProto, TensorShapeProto).

/** ONNX TensorProto.DataType codes of the element types the suites use. */
export const ONNX_TYPE = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7 };

const textEncoder = new TextEncoder();

/** Appends protobuf fields to a growing list of byte chunks. */
class Writer {
  constructor() {
    this.chunks = [];
  }

  varint(value) {
    // BigInt keeps int64 values (and negative ones, as 10-byte two's complement) exact.
    let v = BigInt.asUintN(64, BigInt(value));
    const bytes = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      bytes.push(byte);
    } while (v !== 0n);
    this.chunks.push(Uint8Array.from(bytes));
  }

  tag(field, wireType) {
    this.varint((field << 3) | wireType);
  }

  /** A varint field (int32, int64, enum). */
  int(field, value) {
    this.tag(field, 0);
    this.varint(value);
  }

  /** A 32-bit float field. */
  float(field, value) {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.chunks.push(b);
  }

  /** A length-delimited field: bytes, a string or an embedded message (a Writer). */
  bytes(field, value) {
    const data = value instanceof Writer ? value.finish() : typeof value === 'string' ? textEncoder.encode(value) : value;
    this.tag(field, 2);
    this.varint(data.length);
    this.chunks.push(data);
  }

  finish() {
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** ValueInfoProto of a tensor: name, element type, fixed shape. */
function valueInfo({ name, type, shape }) {
  const dims = new Writer();
  for (const d of shape) {
    const dim = new Writer();
    dim.int(1, d); // dim_value
    dims.bytes(1, dim); // TensorShapeProto.dim
  }
  const tensorType = new Writer();
  tensorType.int(1, ONNX_TYPE[type]); // elem_type
  tensorType.bytes(2, dims); // shape
  const typeProto = new Writer();
  typeProto.bytes(1, tensorType); // tensor_type
  const w = new Writer();
  w.bytes(1, name);
  w.bytes(2, typeProto);
  return w;
}

/** TensorProto holding `data` (a typed array) as raw little-endian bytes. */
function tensorProto({ name, type, shape, data }) {
  const w = new Writer();
  for (const d of shape) w.int(1, d); // dims
  w.int(2, ONNX_TYPE[type]); // data_type
  w.bytes(8, name);
  w.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)); // raw_data
  return w;
}

/** AttributeProto: integers become INT (2), other numbers FLOAT (1), arrays of integers INTS (7). */
function attribute(name, value) {
  const w = new Writer();
  w.bytes(1, name);
  if (Array.isArray(value)) {
    for (const v of value) w.int(8, v); // ints
    w.int(20, 7);
  } else if (Number.isInteger(value)) {
    w.int(3, value); // i
    w.int(20, 2);
  } else {
    w.float(2, value); // f
    w.int(20, 1);
  }
  return w;
}

/**
 * The serialized ModelProto of a graph with one node.
 *
 * @param {object} spec
 * @param {string} spec.opType operator name, e.g. 'MatMul' or 'MatMulNBits'
 * @param {string} [spec.domain] '' (the default ONNX domain) or e.g. 'com.microsoft'
 * @param {Record<string, number | number[]>} [spec.attributes]
 * @param {{name: string, type: string, shape: number[]}[]} spec.inputs graph inputs, in node order
 *   before the initializers
 * @param {{name: string, type: string, shape: number[], data: ArrayBufferView}[]} [spec.initializers]
 *   constant inputs, appended to the node's inputs in this order
 * @param {{name: string, type: string, shape: number[]}[]} spec.outputs
 * @param {string[]} [spec.nodeInputs] the node's input names when they are not inputs then
 *   initializers (an empty string leaves an optional input out)
 * @returns {Uint8Array}
 */
export function singleNodeModel({ opType, domain = '', attributes = {}, inputs, initializers = [], outputs, nodeInputs }) {
  const node = new Writer();
  for (const name of nodeInputs ?? [...inputs, ...initializers].map((t) => t.name)) node.bytes(1, name);
  for (const o of outputs) node.bytes(2, o.name);
  node.bytes(3, `${opType}_0`);
  node.bytes(4, opType);
  for (const [name, value] of Object.entries(attributes)) node.bytes(5, attribute(name, value));
  if (domain) node.bytes(7, domain);

  const graph = new Writer();
  graph.bytes(1, node);
  graph.bytes(2, `${opType}_graph`);
  for (const t of initializers) graph.bytes(5, tensorProto(t));
  for (const t of inputs) graph.bytes(11, valueInfo(t));
  for (const t of outputs) graph.bytes(12, valueInfo(t));

  const model = new Writer();
  model.int(1, 8); // ir_version
  model.bytes(2, 'blora-bench');
  model.bytes(7, graph);
  const opset = new Writer();
  opset.bytes(1, '');
  opset.int(2, 17);
  model.bytes(8, opset);
  if (domain) {
    const custom = new Writer();
    custom.bytes(1, domain);
    custom.int(2, 1);
    model.bytes(8, custom);
  }
  return model.finish();
}

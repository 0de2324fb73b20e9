// The Tensor: a strided view (shape, strides, offset) onto a reference-counted Storage.
import { getBackend } from './backend.js';
import { isHalfDType, storageArrayCtor, type DType, type TypedArray } from './dtype.js';
import { float16BitsToFloat32 } from './half.js';
import { trackInScope, trackTensor } from './memory.js';
import { contiguousStrides, formatShape, numel, type Shape } from './shape.js';
import { Storage } from './storage.js';

/** Implemented by @blora/autograd; installed with `setAutogradEngine`. */
export interface AutogradEngine {
  backward(root: Tensor, grad?: Tensor): void;
}

let engine: AutogradEngine | null = null;

/** @internal Lets the autograd package provide `Tensor.backward`. */
export function setAutogradEngine(e: AutogradEngine | null): void {
  engine = e;
}

let nextId = 1;

/** An n-dimensional array on one device. Create tensors with the functions of this package (`tensor`, `zeros`, ...). */
export class Tensor {
  /** Brand used to recognise tensors across package copies. */
  readonly isTensor = true;
  /** Unique, increasing id (useful in error messages and for ordering). */
  readonly id = nextId++;
  /** Whether autograd tracks operations on this tensor. */
  requiresGrad = false;
  /** Accumulated gradient, filled by `backward()`. */
  grad: Tensor | null = null;
  /** @internal Autograd's node for the op that produced this tensor. */
  gradFn: unknown = null;
  /**
   * @internal The device backend's description of this view, made at its first launch and kept
   * (a view's storage, shape, strides and offset never change). Weights reuse it every step.
   */
  layoutCache: unknown = null;
  private disposed = false;

  /** @internal Use the creation functions instead. */
  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
    readonly offset: number,
  ) {
    storage.refs += 1;
    trackTensor(storage.backend.name, 1);
    trackInScope(this);
  }

  /** Element type. */
  get dtype(): DType {
    return this.storage.dtype;
  }

  /** Name of the device holding the data. */
  get device(): string {
    return this.storage.backend.name;
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get numel(): number {
    return numel(this.shape);
  }

  /** True after `dispose()`. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** True when the elements are laid out row-major with no gaps (size-1 dims may have any stride). */
  get isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      const d = this.shape[i]!;
      if (d !== 1 && this.strides[i] !== expected) return false;
      expected *= d;
    }
    return true;
  }

  /** A short description, `float32[2, 3] on cpu`, for error messages. */
  describe(): string {
    return `${this.dtype}${formatShape(this.shape)} on ${this.device}`;
  }

  /** Releases this tensor's reference to its storage. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    trackTensor(this.device, -1);
    this.storage.release();
    this.grad?.dispose();
    this.grad = null;
    this.gradFn = null;
  }

  /** Throws if disposed; `where` names the caller. */
  assertAlive(where: string): void {
    if (this.disposed) throw new Error(`${where}: tensor ${this.describe()} was disposed`);
  }

  /** Allocates an uninitialised contiguous tensor. */
  static empty(shape: Shape, dtype: DType, device = 'cpu'): Tensor {
    const storage = Storage.allocate(device, dtype, numel(shape));
    return new Tensor(storage, [...shape], contiguousStrides(shape), 0);
  }

  /** Wraps host data (raw bits for half types) as a contiguous tensor on `device`. The array is copied. */
  static fromTypedArray(data: TypedArray, shape: Shape, dtype: DType, device = 'cpu'): Tensor {
    const backend = getBackend(device);
    const storage = new Storage(backend, dtype, data.length, backend.fromHost(dtype, data));
    return new Tensor(storage, [...shape], contiguousStrides(shape), 0);
  }

  /** A new tensor object over the same storage (a view). */
  static view(base: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
    base.assertAlive('view');
    return new Tensor(base.storage, [...shape], [...strides], offset);
  }

  /**
   * The elements in row-major order as a new host typed array in storage representation
   * (half types as 16-bit patterns). Waits for the device.
   */
  toTypedArray(): TypedArray {
    this.assertAlive('toTypedArray');
    if (this.device !== 'cpu') {
      // Device reads copy whole allocations, so a view that is not exactly its storage goes through a dense copy.
      const src = this.isContiguous && this.offset === 0 && this.storage.numel === this.numel ? this : denseCopy(this);
      const host = src.storage.backend.toHost(src.storage.handle, this.dtype, this.numel);
      if (src !== this) src.dispose();
      return host;
    }
    const data = this.storage.handle as TypedArray;
    const n = this.numel;
    if (this.isContiguous) return data.slice(this.offset, this.offset + n);
    const out = new (storageArrayCtor(this.dtype))(n);
    const rank = this.rank;
    const idx = new Array<number>(rank).fill(0);
    let off = this.offset;
    for (let i = 0; i < n; i++) {
      out[i] = data[off]!;
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]! += 1;
        off += this.strides[d]!;
        if (idx[d]! < this.shape[d]!) break;
        off -= this.strides[d]! * this.shape[d]!;
        idx[d] = 0;
      }
    }
    return out;
  }

  /** The elements in row-major order as float64 numbers (half types decoded). */
  toFloat64Array(): Float64Array {
    const raw = this.toTypedArray();
    const out = new Float64Array(raw.length);
    if (this.dtype === 'bfloat16') {
      // bfloat16 bits are the top half of a float32's: widen them all, then convert in one native pass
      // (several times faster than decoding element by element; generation reads logits every token).
      const widened = new Uint32Array(raw.length);
      for (let i = 0; i < raw.length; i++) widened[i] = raw[i]! << 16;
      out.set(new Float32Array(widened.buffer));
    } else if (this.dtype === 'float16') for (let i = 0; i < raw.length; i++) out[i] = float16BitsToFloat32(raw[i]!);
    else for (let i = 0; i < raw.length; i++) out[i] = raw[i]!;
    return out;
  }

  /** The elements as (nested) JavaScript arrays of numbers; a number for a scalar. */
  toArray(): NestedNumbers {
    const flat = this.toFloat64Array();
    if (this.rank === 0) return flat[0]!;
    let pos = 0;
    const build = (dim: number): NestedNumbers[] => {
      const out: NestedNumbers[] = [];
      for (let i = 0; i < this.shape[dim]!; i++) out.push(dim === this.rank - 1 ? flat[pos++]! : build(dim + 1));
      return out;
    };
    return build(0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new RangeError(`item: tensor ${this.describe()} has ${this.numel} elements, expected 1`);
    return this.toFloat64Array()[0]!;
  }

  /** This tensor on `device` (itself when already there). */
  to(device: string): Tensor {
    this.assertAlive('to');
    if (device === this.device) return this;
    const host = this.toTypedArray();
    const out = Tensor.fromTypedArray(host, this.shape, this.dtype, device);
    recordOpHook?.('to', [this], [out], { device });
    return out;
  }

  /** Reverse-mode differentiation from this tensor (needs @blora/autograd to be imported). */
  backward(grad?: Tensor): void {
    if (!engine) throw new Error("backward: no autograd engine installed; import '@blora/autograd'");
    engine.backward(this, grad);
  }

  /** A readable rendering of small tensors. */
  toString(): string {
    const body = this.numel <= 64 ? JSON.stringify(this.toArray()) : '...';
    return `Tensor(${this.describe()}${isHalfDType(this.dtype) ? '' : ''}) ${body}`;
  }
}

/** Nested arrays of numbers, as produced by `toArray`. */
export type NestedNumbers = number | NestedNumbers[];

// Late-bound to avoid an import cycle with the op modules.
let denseCopy: (t: Tensor) => Tensor = () => {
  throw new Error('dense copy not initialised');
};
let recordOpHook: ((op: string, i: Tensor[], o: Tensor[], a: Record<string, unknown>) => void) | null = null;

/** @internal Wires the op modules into Tensor methods. */
export function initTensorHooks(hooks: { denseCopy: (t: Tensor) => Tensor; record: typeof recordOpHook }): void {
  denseCopy = hooks.denseCopy;
  recordOpHook = hooks.record;
}

// The kernel registry (op x device -> kernel) and the single path by which ops run.
// Every op that produces new values goes through `execute`; every op, views included,
// is announced to the op observer so that autograd can record it without this package
// depending on autograd.
import type { DType } from './dtype.js';
import type { Shape } from './shape.js';
import { Tensor } from './tensor.js';
import { timedDispatch } from './op-profile.js';

/** Op attributes: plain data (numbers, strings, arrays) that parameterise a kernel. */
export type Attrs = Readonly<Record<string, unknown>>;

/** A kernel writes `outputs` (already allocated on the same device) from `inputs`. */
export type KernelFn = (inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Attrs) => void;

const kernels = new Map<string, Map<string, KernelFn>>();

/** Registers (or replaces) the kernel of `op` on `device`. */
export function registerKernel(op: string, device: string, fn: KernelFn): void {
  let perDevice = kernels.get(op);
  if (!perDevice) kernels.set(op, (perDevice = new Map()));
  perDevice.set(device, fn);
}

/** The kernel of `op` on `device`, or undefined. */
export function findKernel(op: string, device: string): KernelFn | undefined {
  return kernels.get(op)?.get(device);
}

/** The kernel of `op` on `device`; throws naming both when there is none. */
export function getKernel(op: string, device: string): KernelFn {
  const k = findKernel(op, device);
  if (!k) {
    const where = [...(kernels.get(op)?.keys() ?? [])];
    throw new Error(`${op}: no kernel registered for device '${device}'` +
      (where.length ? ` (available on: ${where.join(', ')})` : ' (unknown op)'));
  }
  return k;
}

/** Names of the ops that have a kernel on `device`. */
export function listKernels(device: string): string[] {
  return [...kernels].filter(([, m]) => m.has(device)).map(([op]) => op).sort();
}

/** What the op observer sees for each op that ran. */
export interface OpRecord {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Attrs;
}

/** Called after every op; autograd installs one to build its tape. */
export type OpObserver = (record: OpRecord) => void;

let observer: OpObserver | null = null;

/** Installs the op observer (there is at most one); pass null to remove it. Returns the previous one. */
export function setOpObserver(fn: OpObserver | null): OpObserver | null {
  const prev = observer;
  observer = fn;
  return prev;
}

/** Announces an op that ran outside `execute` (views) to the observer. */
export function recordOp(op: string, inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Attrs = {}): void {
  if (observer) observer({ op, inputs, outputs, attrs });
}

/** The device shared by all `inputs`; throws naming the op when they differ or one is disposed. */
export function commonDevice(op: string, inputs: readonly Tensor[]): string {
  if (inputs.length === 0) throw new Error(`${op}: needs at least one input tensor`);
  const device = inputs[0]!.device;
  for (const t of inputs) {
    if (t.isDisposed) throw new Error(`${op}: an input tensor ${t.describe()} was already disposed`);
    if (t.device !== device) {
      throw new Error(`${op}: all inputs must be on one device, got ${inputs.map((x) => x.device).join(' and ')}`);
    }
  }
  return device;
}

/** Output description for `execute`. */
export interface OutputSpec {
  shape: Shape;
  dtype: DType;
}

/**
 * Allocates the outputs on the inputs' device, runs the op's kernel there and
 * announces the op. Shape and dtype checks belong to the caller (the op's front end).
 */
export function execute(
  op: string,
  inputs: readonly Tensor[],
  outputs: readonly OutputSpec[],
  attrs: Attrs = {},
  /** Required when there are no inputs (creation ops such as `fill` and `randUniform`). */
  device?: string,
): Tensor[] {
  if (inputs.length > 0) {
    const d = commonDevice(op, inputs);
    if (device !== undefined && device !== d) throw new Error(`${op}: inputs are on ${d} but device '${device}' was requested`);
    device = d;
  } else if (device === undefined) {
    throw new Error(`${op}: an op without inputs needs a device`);
  }
  const kernel = getKernel(op, device);
  const outs = timedDispatch(op, device, () => {
    const made = outputs.map((o) => Tensor.empty(o.shape, o.dtype, device));
    try {
      kernel(inputs, made, attrs);
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
    return made;
  });
  recordOp(op, inputs, outs, attrs);
  return outs;
}

/**
 * Runs the kernel of `op` on `device` directly on tensors the caller owns: nothing is
 * allocated or recorded (in-place updates such as `adamwStep`, internal copies). An open op
 * profile times it like a dispatched op.
 */
export function runKernel(op: string, device: string, inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Attrs = {}): void {
  const kernel = getKernel(op, device);
  timedDispatch(op, device, () => kernel(inputs, outputs, attrs));
}

/** `execute` for ops with exactly one output. */
export function execute1(op: string, inputs: readonly Tensor[], shape: Shape, dtype: DType, attrs: Attrs = {}, device?: string): Tensor {
  return execute(op, inputs, [{ shape, dtype }], attrs, device)[0]!;
}

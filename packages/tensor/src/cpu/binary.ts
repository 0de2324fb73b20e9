// CPU kernels for elementwise binary ops. Inputs arrive broadcast to the output shape.
import { registerKernel } from '../dispatch.js';
import { commitValues, isBroadcastScalar, outputValues, readFirst, readValues } from './access.js';

/** Per-element function of a binary op, computed in the kernel's compute type. */
export type BinaryFn = (x: number, y: number) => number;

/** Registers `op` on the CPU computing `f(x, y)` per element; broadcast scalars are read once. */
export function registerBinaryCpu(op: string, f: BinaryFn): void {
  registerKernel(op, 'cpu', ([a, b], [out]) => {
    const dst = outputValues(out!);
    const n = dst.length;
    const aScalar = isBroadcastScalar(a!);
    const bScalar = isBroadcastScalar(b!);
    if (aScalar && bScalar) {
      dst.fill(f(readFirst(a!), readFirst(b!)));
    } else if (aScalar) {
      const xv = readFirst(a!);
      const yv = readValues(b!);
      for (let i = 0; i < n; i++) dst[i] = f(xv, yv[i]!);
    } else if (bScalar) {
      const xv = readValues(a!);
      const yv = readFirst(b!);
      for (let i = 0; i < n; i++) dst[i] = f(xv[i]!, yv);
    } else {
      const xv = readValues(a!);
      const yv = readValues(b!);
      for (let i = 0; i < n; i++) dst[i] = f(xv[i]!, yv[i]!);
    }
    commitValues(out!, dst);
  });
}

registerBinaryCpu('add', (x, y) => x + y);

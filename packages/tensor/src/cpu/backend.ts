// The CPU device: storage is a plain typed array, kernels are TypeScript.
import { registerBackend, type Backend } from '../backend.js';
import { storageArrayCtor, type DType, type TypedArray } from '../dtype.js';

/** The always-available `cpu` backend. */
export const cpuBackend: Backend = {
  name: 'cpu',
  allocate(dtype: DType, numel: number): TypedArray {
    return new (storageArrayCtor(dtype))(numel);
  },
  free(): void {
    // Garbage-collected; nothing to do.
  },
  fromHost(dtype: DType, data: TypedArray): TypedArray {
    const ctor = storageArrayCtor(dtype);
    if (!(data instanceof ctor)) {
      throw new TypeError(`cpu: expected a ${ctor.name} for dtype ${dtype}, got ${data.constructor.name}`);
    }
    return data.slice();
  },
  toHost(handle: unknown, _dtype: DType, numel: number): TypedArray {
    return (handle as TypedArray).slice(0, numel);
  },
  synchronize(): void {},
};

registerBackend(cpuBackend);

// The 'cuda' backend: storage handles are blocks of the addon's caching allocator.
import { itemSize, storageArrayCtor, type Backend, type CapturedGraph, type DType, type TypedArray } from '@blora/tensor';
import { cudaError } from './errors.js';
import { native } from './native.js';

/** A block of device memory held by one storage. Address 0 stands for an empty allocation. */
export class DeviceBuffer {
  constructor(
    /** Device address of the first byte. */
    readonly address: number,
    /** Size in bytes that was asked for. */
    readonly byteLength: number,
  ) {}
}

function allocateBytes(bytes: number): DeviceBuffer {
  if (bytes === 0) return new DeviceBuffer(0, 0);
  try {
    return new DeviceBuffer(native().malloc(bytes), bytes);
  } catch (e) {
    throw cudaError(`cuda: allocating ${bytes} bytes`, e);
  }
}

/**
 * The 'cuda' device. Memory comes from a caching allocator (freed blocks are reused without
 * a driver call); kernels and copies run in order on one stream; `toHost` and `synchronize`
 * are the only points that wait for the GPU.
 */
export const cudaBackend: Backend = {
  name: 'cuda',
  allocate(dtype: DType, numel: number): DeviceBuffer {
    return allocateBytes(numel * itemSize(dtype));
  },
  free(handle: unknown): void {
    const buffer = handle as DeviceBuffer;
    if (buffer.address !== 0) native().free(buffer.address);
  },
  fromHost(dtype: DType, data: TypedArray): DeviceBuffer {
    const ctor = storageArrayCtor(dtype);
    if (!(data instanceof ctor)) {
      throw new TypeError(`cuda: expected a ${ctor.name} for dtype ${dtype}, got ${data.constructor.name}`);
    }
    const buffer = allocateBytes(data.byteLength);
    if (buffer.address === 0) return buffer;
    try {
      native().upload(buffer.address, data);
    } catch (e) {
      native().free(buffer.address);
      throw cudaError(`cuda: copying ${data.byteLength} bytes to the device`, e);
    }
    return buffer;
  },
  toHost(handle: unknown, dtype: DType, numel: number): TypedArray {
    const out = new (storageArrayCtor(dtype))(numel);
    if (numel === 0) return out;
    try {
      native().download((handle as DeviceBuffer).address, out);
    } catch (e) {
      throw cudaError(`cuda: reading ${dtype}[${numel}] back from the device`, e);
    }
    return out;
  },
  synchronize(): void {
    try {
      native().synchronize();
    } catch (e) {
      throw cudaError('cuda: synchronize', e);
    }
  },
  captureGraph(run: () => void): CapturedGraph {
    const addon = native();
    addon.graphBegin();
    try {
      run();
    } catch (e) {
      addon.graphEnd(false);
      throw e;
    }
    let id: number;
    try {
      id = addon.graphEnd(true);
    } catch (e) {
      throw cudaError('cuda: captureGraph', e);
    }
    let live = true;
    return {
      replay(): void {
        if (!live) throw new Error('cuda: the captured graph was disposed');
        addon.graphLaunch(id);
      },
      dispose(): void {
        if (live) addon.graphDestroy(id);
        live = false;
      },
    };
  },
};

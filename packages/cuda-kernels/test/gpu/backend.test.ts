// The cuda backend: exact transfers of every dtype, the caching allocator, out-of-memory
// reports and error messages.
import { execute1, memoryStats, storageArrayCtor, Tensor, tidy, transpose, type TypedArray } from '@blora/tensor';
import { seededRandom } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { CudaError, cudaAvailable, cudaMemoryInfo, emptyCache, synchronize } from '@blora/cuda-kernels';
import { ALL_DTYPES, makeTensor, valuesFor } from './helpers.js';

/** The error `fn` throws; fails the test when it does not throw. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

/** `n` random storage words of `dtype`: any bit pattern for the 16-bit floats (NaNs included). */
function randomStorage(dtype: (typeof ALL_DTYPES)[number], n: number, seed: number): TypedArray {
  const out = new (storageArrayCtor(dtype))(n);
  const rnd = seededRandom(seed);
  if (dtype === 'float16' || dtype === 'bfloat16') {
    for (let i = 0; i < n; i++) out[i] = Math.floor(rnd() * 65536);
  } else {
    out.set(valuesFor(dtype, n, seed, -1e6, 1e6) as never);
  }
  return out;
}

function bytesOf(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

describe.skipIf(!cudaAvailable())('cuda backend', () => {
  it('round-trips the exact bits of every dtype, odd and empty sizes included', () => {
    for (const dtype of ALL_DTYPES) {
      for (const n of [0, 1, 7, 1001, 4099]) {
        const raw = randomStorage(dtype, n, n + 3);
        const t = Tensor.fromTypedArray(raw, [n], dtype, 'cuda');
        expect(t.device).toBe('cuda');
        expect(bytesOf(t.toTypedArray())).toEqual(bytesOf(raw));
        t.dispose();
      }
    }
  });

  it('moves data larger than the staging buffers in both directions', () => {
    const n = 3_000_001; // 12 MB of float32: several 4 MiB chunks and a ragged tail
    const raw = new Float32Array(n);
    for (let i = 0; i < n; i++) raw[i] = i * 0.5 - 7;
    const t = Tensor.fromTypedArray(raw, [n], 'float32', 'cuda');
    const back = t.toTypedArray() as Float32Array;
    expect(back.length).toBe(n);
    let mismatches = 0;
    for (let i = 0; i < n; i++) if (back[i] !== raw[i]) mismatches++;
    expect(mismatches).toBe(0);
    t.dispose();
  });

  it('reads non-contiguous views back in row-major order (through the copy kernel)', () => {
    for (const dtype of ALL_DTYPES) {
      const values = valuesFor(dtype, 6 * 5, 11);
      const strided = makeTensor(values, [6, 5], dtype, 'cuda', 'strided');
      expect(strided.isContiguous).toBe(false);
      const expected = makeTensor(values, [6, 5], dtype, 'cpu', 'contiguous').toFloat64Array();
      expect(Array.from(strided.toFloat64Array())).toEqual(Array.from(expected));
      const t = transpose(strided, 0, 1);
      const expectedT: number[] = [];
      for (let j = 0; j < 5; j++) for (let i = 0; i < 6; i++) expectedT.push(expected[i * 5 + j]!);
      expect(Array.from(t.to('cpu').toFloat64Array())).toEqual(expectedT);
      strided.dispose();
      t.dispose();
    }
  });

  it('returns freed blocks to a cache and reuses them without calling cudaMalloc', () => {
    const first = Tensor.empty([1234, 5], 'float32', 'cuda');
    first.dispose();
    const before = cudaMemoryInfo();
    const again = Tensor.empty([1234, 5], 'float32', 'cuda');
    const after = cudaMemoryInfo();
    expect(after.cudaMallocCalls).toBe(before.cudaMallocCalls);
    expect(after.cacheHits).toBe(before.cacheHits + 1);
    expect(after.allocatedBytes).toBeGreaterThanOrEqual(before.allocatedBytes + 1234 * 5 * 4);
    expect(after.requestedBytes).toBe(before.requestedBytes + 1234 * 5 * 4);
    again.dispose();
    emptyCache();
    const emptied = cudaMemoryInfo();
    expect(emptied.cachedBytes).toBe(0);
    expect(emptied.cachedBlocks).toBe(0);
    expect(emptied.reservedBytes).toBe(emptied.allocatedBytes);
    expect(emptied.deviceTotalBytes).toBeGreaterThan(0);
    expect(emptied.deviceFreeBytes).toBeLessThanOrEqual(emptied.deviceTotalBytes);
  });

  it('counts cuda tensors in memoryStats and frees them on dispose', () => {
    const before = memoryStats('cuda');
    const t = Tensor.empty([100, 3], 'float64', 'cuda');
    expect(memoryStats('cuda').bytes).toBe(before.bytes + 2400);
    t.dispose();
    expect(memoryStats('cuda')).toEqual(before);
  });

  it('reports out of memory with the size asked and the free memory, then keeps working', () => {
    const before = memoryStats('cuda');
    const error = thrown(() => Tensor.empty([2 ** 36], 'float32', 'cuda')) as CudaError; // 256 GiB
    expect(error).toBeInstanceOf(CudaError);
    expect(error.code).toBe('CUDA_OUT_OF_MEMORY');
    expect(error.message).toContain(String(2 ** 38));
    expect(error.message).toMatch(/asked for 256\.00 GiB .* only .* of .* is free on the device/);
    expect(memoryStats('cuda')).toEqual(before);
    const t = tidy(() => makeTensor([1, 2, 3], [3], 'float32', 'cuda', 'contiguous'));
    expect(Array.from(t.toFloat64Array())).toEqual([1, 2, 3]);
    t.dispose();
  });

  it('kernel errors name the op, the tensors and the reason', () => {
    const a = makeTensor([1, 2, 3, 4, 5, 6], [2, 3], 'int32', 'cuda', 'contiguous');
    const b = makeTensor([1, 2, 3, 4, 5, 6], [3, 2], 'int32', 'cuda', 'contiguous');
    expect(() => execute1('matmul', [a, b], [2, 2], 'int32')).toThrow(
      /^cuda matmul \(int32\[2, 3\] on cuda, int32\[3, 2\] on cuda, int32\[2, 2\] on cuda\): matmul: dtype int32 is not supported on cuda/,
    );
    const error = thrown(() => execute1('exp', [a], [2, 3], 'int32')) as CudaError;
    expect(error).toBeInstanceOf(CudaError);
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(/cuda exp .*exp: dtype int32 is not supported on cuda \(supported: float32, float64, float16, bfloat16\)/);
    const deep = makeTensor([1, 2], [1, 1, 1, 1, 1, 1, 1, 1, 2], 'float32', 'cuda', 'contiguous');
    const wide = transpose(deep, 0, 8);
    expect(() => execute1('copy', [wide], wide.shape, 'float32')).toThrow(/rank 9; cuda kernels support up to 8/);
    for (const t of [a, b, deep, wide]) t.dispose();
  });

  it('synchronize waits for queued work', () => {
    const t = tidy(() => execute1('exp', [makeTensor(valuesFor('float32', 10000, 5), [10000], 'float32', 'cuda', 'contiguous')], [10000], 'float32'));
    expect(() => synchronize()).not.toThrow();
    t.dispose();
  });
});

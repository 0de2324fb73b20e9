// Loading the compiled addon and probing for a usable GPU. Nothing here throws at import:
// a missing build, a missing driver or a missing GPU all end as `cudaAvailable() === false`
// with a reason.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** What the addon found out about the GPU. */
export interface CudaDeviceInfo {
  /** True when a supported GPU was found and a context created on it. */
  readonly available: boolean;
  /** Why the device cannot be used ('' when available). */
  readonly reason: string;
  /** The GPU's name, e.g. 'NVIDIA H200' ('' when none was found). */
  readonly deviceName: string;
  /** Compute capability 'major.minor' ('0.0' when none was found). */
  readonly computeCapability: string;
  /** CUDA driver version as an integer (12040 = 12.4); 0 without a driver. */
  readonly driverVersion: number;
  /** CUDA runtime version the addon was built with, as an integer. */
  readonly runtimeVersion: number;
  /** Device memory in bytes. */
  readonly totalMemory: number;
}

/** Counters of the caching allocator and the device's memory, in bytes or counts. */
export interface CudaMemoryInfo {
  /** Obtained from the driver (cudaMalloc) and not yet given back. */
  readonly reservedBytes: number;
  /** In blocks held by live tensors (blocks are rounded up to size classes). */
  readonly allocatedBytes: number;
  /** What live tensors asked for (before rounding). */
  readonly requestedBytes: number;
  /** Reserved but free, kept for reuse; `emptyCache()` returns it to the driver. */
  readonly cachedBytes: number;
  /** The highest `allocatedBytes` seen. */
  readonly peakAllocatedBytes: number;
  /** Blocks held by live tensors. */
  readonly liveBlocks: number;
  /** Free blocks in the cache. */
  readonly cachedBlocks: number;
  /** cudaMalloc calls so far (cache misses). */
  readonly cudaMallocCalls: number;
  /** cudaFree calls so far (cache releases). */
  readonly cudaFreeCalls: number;
  /** Allocations served from the cache. */
  readonly cacheHits: number;
  /** Free device memory reported by the driver (cudaMemGetInfo). */
  readonly deviceFreeBytes: number;
  /** Total device memory reported by the driver. */
  readonly deviceTotalBytes: number;
}

/**
 * The functions of the compiled addon (native/addon.cc). Tensors are passed as descriptors
 * (see descriptor.ts); op codes index the name lists the addon exports.
 * @internal
 */
export interface NativeAddon {
  readonly dtypeNames: readonly string[];
  readonly unaryOps: readonly string[];
  readonly binaryOps: readonly string[];
  readonly compareOps: readonly string[];
  readonly reduceOps: readonly string[];
  probe(): CudaDeviceInfo;
  malloc(bytes: number): number;
  free(address: number): void;
  emptyCache(): void;
  memoryStats(): CudaMemoryInfo;
  synchronize(): void;
  upload(address: number, data: ArrayBufferView): void;
  download(address: number, out: ArrayBufferView): void;
  fill(out: Float64Array, lowBits: number, highBits: number): void;
  copy(src: Float64Array, dst: Float64Array): void;
  cast(src: Float64Array, dst: Float64Array): void;
  unary(op: number, x: Float64Array, out: Float64Array): void;
  isFinite(x: Float64Array, out: Float64Array): void;
  binary(op: number, a: Float64Array, b: Float64Array, out: Float64Array): void;
  compare(op: number, a: Float64Array, b: Float64Array, out: Float64Array): void;
  where(cond: Float64Array, a: Float64Array, b: Float64Array, out: Float64Array): void;
  clamp(x: Float64Array, out: Float64Array, min: number | null, max: number | null): void;
  reduceRows(op: number, x: Float64Array, out: Float64Array, rows: number, cols: number): void;
  /** Reduces the middle axis of a contiguous [outer, reduced, inner] block into [outer, inner]. */
  reduceMiddle(op: number, x: Float64Array, out: Float64Array, outer: number, reduced: number, inner: number): void;
  /** int32 out [outer, inner] = argmax (isMax) or argmin over the middle axis of a dense [outer, reduced, inner] x (reduced >= 1). */
  argReduce(isMax: boolean, x: Float64Array, out: Float64Array, outer: number, reduced: number, inner: number): void;
  softmaxRows(log: boolean, x: Float64Array, out: Float64Array, rows: number, cols: number): void;
  matmul(a: Float64Array, b: Float64Array, out: Float64Array): void;
  /**
   * The kernel `matmul` would use for these operands, e.g. 'wgmma-128x256', 'pipelined-128x256',
   * 'mma-64x64', or for float32 'tf32x3-128x64 split-K 7x152' / 'sgemm-128x128'.
   */
  matmulKernel(a: Float64Array, b: Float64Array, out: Float64Array): string;
  /**
   * Picks the tensor-core GEMM path ('auto', 'wgmma' or 'pipelined') for the rest of the process,
   * overriding `BLORA_CUDA_GEMM`; returns the previous path.
   */
  setGemmPath(path: 'auto' | 'wgmma' | 'pipelined'): 'auto' | 'wgmma' | 'pipelined';
  /**
   * Picks the float32 matmul kernel for the rest of the process, overriding
   * `BLORA_CUDA_FLOAT32_MATMUL`: 'tf32x3' (tensor cores at float32 accuracy, the default) or
   * 'simt' (CUDA cores); returns the previous path.
   */
  setFloat32MatmulPath(path: 'tf32x3' | 'simt'): 'tf32x3' | 'simt';
  /** See `setDependentLaunches` in launches.ts. */
  setDependentLaunches(on: boolean): boolean;
  /** Whether the TMA + wgmma GEMM can run here (a Hopper GPU running the build's sm_90a code). */
  wgmmaAvailable(): boolean;
  // Data movement (bindings_data.cc).
  copyInto(src: Float64Array, dst: Float64Array): void;
  // Graph capture (graph.cc): record the stream, then replay the recording with one launch.
  graphBegin(): void;
  /** Stops recording; returns the graph's id (0 when `keep` is false: the recording is discarded). */
  graphEnd(keep: boolean): number;
  graphLaunch(id: number): void;
  /** Replays the graph `times` times back to back; the device time in milliseconds (waits for them). */
  graphReplay(id: number, times: number): number;
  graphDestroy(id: number): void;
  /** src into dst's window starting at the int32 `position` (read on the device) along `axis`. */
  copyIntoAt(src: Float64Array, dst: Float64Array, position: Float64Array, axis: number): void;
  indexSelect(x: Float64Array, index: Float64Array, out: Float64Array, axis: number): void;
  gather(x: Float64Array, index: Float64Array, out: Float64Array, axis: number): void;
  scatterAdd(acc: Float64Array, index: Float64Array, src: Float64Array, axis: number): void;
  indexAdd(acc: Float64Array, index: Float64Array, src: Float64Array, axis: number): void;
  accumulationDType(dtypeCode: number): number;
  avgPool1d(x: Float64Array, out: Float64Array, kernel: number): void;
  randUniform(out: Float64Array, k0: number, k1: number, offset: number): void;
  randNormal(out: Float64Array, k0: number, k1: number, offset: number): void;
  randInt(out: Float64Array, k0: number, k1: number, offset: number, low: number, range: number): void;
  randBernoulli(out: Float64Array, k0: number, k1: number, offset: number, threshold: number): void;
  adamwStep(param: Float64Array, grad: Float64Array, m: Float64Array, v: Float64Array, constants: Float64Array): void;
  // Fused transformer ops (bindings_nn.cc).
  rmsNorm(x: Float64Array, weight: Float64Array, y: Float64Array, rstd: Float64Array, eps: number, offset: number): void;
  /** dweight is filled with zeros, its sums skipped, when weightGrad is false. */
  rmsNormBackward(dy: Float64Array, x: Float64Array, weight: Float64Array, rstd: Float64Array, dx: Float64Array,
    dweight: Float64Array, offset: number, weightGrad: boolean): void;
  rope(x: Float64Array, cos: Float64Array, sin: Float64Array, out: Float64Array, inverse: boolean): void;
  /** Returns null, or [position, target] of the first target outside [0, V) that is not ignored. */
  crossEntropy(logits: Float64Array, targets: Float64Array, loss: Float64Array, lse: Float64Array, ignoreIndex: number,
    mean: boolean): [number, number] | null;
  crossEntropyBackward(dloss: Float64Array, logits: Float64Array, targets: Float64Array, lse: Float64Array,
    dlogits: Float64Array, ignoreIndex: number, mean: boolean): [number, number] | null;
  /** keyLength: an int32 tensor of one element, the leading keys that take part (read on the device). */
  attention(q: Float64Array, k: Float64Array, v: Float64Array, o: Float64Array, lse: Float64Array, causal: boolean,
    window: number, scale: number, keyLength?: Float64Array | null): void;
  attentionBackward(dO: Float64Array, q: Float64Array, k: Float64Array, v: Float64Array, o: Float64Array,
    lse: Float64Array, dq: Float64Array, dk: Float64Array, dv: Float64Array, causal: boolean, window: number,
    scale: number): void;
  /**
   * Picks the attention kernels ('auto', 'tensorcore' or 'simt') for the rest of the process,
   * overriding `BLORA_CUDA_ATTENTION`; returns the previous path.
   */
  setAttentionPath(path: 'auto' | 'tensorcore' | 'simt'): 'auto' | 'tensorcore' | 'simt';
  /** The kernels `attention` (dO null) or `attentionBackward` would run these operands on. */
  attentionKernel(q: Float64Array, k: Float64Array, v: Float64Array, dO: Float64Array | null): 'tensorcore' | 'simt';
  // Quantized weights (bindings_quant.cc).
  readonly quantGemvMaxRows: number;
  fourBitDequantize(packed: Float64Array, absmax: Float64Array, table: Float64Array, out: Float64Array,
    outFeatures: number, inFeatures: number, blocksize: number): void;
  intDequantize(codes: Float64Array, scales: Float64Array, offsets: Float64Array, out: Float64Array, bits: number,
    outFeatures: number, inFeatures: number, blockRows: number, blockCols: number): void;
  dequantizeBlockwise8(codes: Float64Array, absmax: Float64Array, code: Float64Array, out: Float64Array,
    blocksize: number, offset: number): void;
  /**
   * settled: the weight and table are not written by the kernel just before (see fourBitTilesGemv).
   * With `addend` (float32, dense [M, out / lambda]): out += scale · repeatInterleave(addend, lambda)
   * before the one rounding, where the kernel can (the tensor-core GEMV); returns whether it did
   * (true when no addend was given). With `factor` (float32, dense [out / lambda, r]) the addend is
   * low-rank, dense [M, r], and the term is scale · repeatInterleave(addend · factorᵀ, lambda), the
   * dot products summed in float32 in the epilogue. The same for the three GEMVs below.
   */
  fourBitGemv(x: Float64Array, packed: Float64Array, absmax: Float64Array, table: Float64Array, out: Float64Array,
    outFeatures: number, inFeatures: number, blocksize: number, settled: boolean,
    addend?: Float64Array | null, lambda?: number, scale?: number, factor?: Float64Array | null): boolean;
  intGemv(x: Float64Array, codes: Float64Array, scales: Float64Array, offsets: Float64Array, out: Float64Array,
    bits: number, outFeatures: number, inFeatures: number, blockRows: number, blockCols: number, settled: boolean,
    addend?: Float64Array | null, lambda?: number, scale?: number, factor?: Float64Array | null): boolean;
  /** The decode tile layout of an NF4 / FP4 weight (blocks of 64, inFeatures % 256 == 0). */
  fourBitDecodeTiles(packed: Float64Array, absmax: Float64Array, tiles: Float64Array, tileAbsmax: Float64Array,
    outFeatures: number, inFeatures: number, blocksize: number): void;
  /**
   * out [M, out] = x [M, in] (bfloat16 / float16, dense rows) · Wᵀ for W in the decode tile layout.
   * settled: the tiles and table are not written by the kernel just before (the GEMV may start
   * reading them while that kernel finishes).
   */
  fourBitTilesGemv(x: Float64Array, tiles: Float64Array, tileAbsmax: Float64Array, table: Float64Array, out: Float64Array,
    outFeatures: number, inFeatures: number, blocksize: number, settled: boolean,
    addend?: Float64Array | null, lambda?: number, scale?: number, factor?: Float64Array | null): boolean;
  /** The decode tile layout of an INT4 weight in blocks of 1 x 64 (inFeatures % 256 == 0). */
  intDecodeTiles(codes: Float64Array, scales: Float64Array, offsets: Float64Array, tiles: Float64Array, tileScales: Float64Array,
    tileOffsets: Float64Array, bits: number, outFeatures: number, inFeatures: number, blockRows: number, blockCols: number): void;
  /** out [M, out] = x [M, in] (bfloat16 / float16, dense rows) · Wᵀ for an INT4 W in the decode tile layout. */
  intTilesGemv(x: Float64Array, tiles: Float64Array, tileScales: Float64Array, tileOffsets: Float64Array, out: Float64Array,
    bits: number, outFeatures: number, inFeatures: number, blockRows: number, blockCols: number, settled: boolean,
    addend?: Float64Array | null, lambda?: number, scale?: number, factor?: Float64Array | null): boolean;
  /** Fused dequantize + tensor-core GEMM; false when the operands do not suit it (nothing ran). */
  /** With `addend` (float32, dense [M, n / lambda]): out += scale · repeatInterleave(addend, lambda) in the epilogue. */
  fourBitGemm(x: Float64Array, packed: Float64Array, absmax: Float64Array, table: Float64Array, out: Float64Array,
    outFeatures: number, inFeatures: number, blocksize: number, transposed: boolean,
    addend?: Float64Array | null, lambda?: number, scale?: number): boolean;
  intGemm(x: Float64Array, codes: Float64Array, scales: Float64Array, offsets: Float64Array, out: Float64Array,
    bits: number, outFeatures: number, inFeatures: number, blockRows: number, blockCols: number, transposed: boolean,
    addend?: Float64Array | null, lambda?: number, scale?: number): boolean;
  // Pooling maps of the adapters (bindings_quant.cc).
  avgPool1dBackward(dy: Float64Array, dx: Float64Array, kernel: number): void;
  poolCast(x: Float64Array, out: Float64Array, kernel: number): void;
  /**
   * out [M, N] = runMeans(x [M, K·λ], λ) · wᵀ for M <= 16, one to eight warps an output feature:
   * w float32 [N, K] with a float32 out, or (λ = 1) w and out of x's 16-bit dtype; false (nothing
   * ran) when the operands do not suit it.
   */
  skinnyLinear(x: Float64Array, w: Float64Array, out: Float64Array, lambda: number): boolean;
  repeatAdd(z: Float64Array, base: Float64Array | null, out: Float64Array, lambda: number, scale: number): void;
  sumRuns(x: Float64Array, out: Float64Array, kernel: number): void;
  /** Vectorized repeat of a contiguous tensor; false when the layout is not handled (nothing ran). */
  repeatInterleave(x: Float64Array, out: Float64Array, repeats: number, axis: number): boolean;
}

/** Outcome of loading the addon. @internal */
export interface AddonLoad {
  /** The addon, when it loaded and found a usable GPU. */
  readonly addon: NativeAddon | null;
  /** The probe's report, when the addon loaded. */
  readonly device: CudaDeviceInfo | null;
  /** Why CUDA cannot be used ('' when it can). */
  readonly reason: string;
}

/** Where the build puts the addon (the same relative path from src/ and dist/). @internal */
export const defaultAddonPath = fileURLToPath(new URL('../build/Release/blora_cuda.node', import.meta.url));

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Loads the addon at `path` and probes the GPU; never throws. @internal */
export function loadAddon(path: string = defaultAddonPath): AddonLoad {
  if (!existsSync(path)) {
    return { addon: null, device: null, reason: `the CUDA addon is not built (${path} is missing; run the package build on a machine with nvcc)` };
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    return { addon: null, device: null, reason: `the CUDA addon ${path} failed to load: ${messageOf(e)}` };
  }
  let device: CudaDeviceInfo;
  try {
    device = addon.probe();
  } catch (e) {
    return { addon: null, device: null, reason: `probing for a GPU failed: ${messageOf(e)}` };
  }
  if (!device.available) return { addon: null, device, reason: device.reason || 'no usable GPU' };
  return { addon, device, reason: '' };
}

const loaded = loadAddon();

/** True when the CUDA addon is built and a supported NVIDIA GPU is usable; the 'cuda' device is registered then. */
export function cudaAvailable(): boolean {
  return loaded.addon !== null;
}

/** Why the 'cuda' device is not available ('' when it is). */
export function cudaUnavailableReason(): string {
  return loaded.reason;
}

/** The GPU the 'cuda' device runs on (null when the addon is not built or failed to load). */
export function cudaDeviceInfo(): CudaDeviceInfo | null {
  return loaded.device;
}

/** The loaded addon; throws with the reason when CUDA is not available. @internal */
export function native(): NativeAddon {
  if (!loaded.addon) throw new Error(`cuda is not available: ${loaded.reason}`);
  return loaded.addon;
}

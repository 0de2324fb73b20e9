/**
 * @blora/cpu-kernels: native CPU kernels for @blora/tensor.
 *
 * Importing this package loads a compiled C++ addon and replaces the TypeScript kernels of
 * the `cpu` device for the cases it handles: float32 matmul (packed, cache-blocked GEMM with
 * an AVX-512 or AVX2/FMA micro-kernel chosen at run time and a thread pool; matrix-vector
 * products stream the matrix once),
 * float32 add/sub/mul/div on dense or broadcast-scalar operands, sigmoid/silu (and silu's
 * gradient) of dense tensors, softmax/logSoftmax over the last axis, avgPool1d and
 * repeatInterleave, the float32 products with quantized weights of
 * @blora/quant (NF4 / FP4, INT4, INT8; the weight is decoded slice by slice, never densely),
 * fused attention forward and backward, rmsNorm, cross-entropy (each with its backward) and
 * the AdamW update. Every other case (other dtypes, layouts the native
 * loops do not read) still runs the TypeScript kernel it replaced.
 *
 * When the addon is not built (no C++ toolchain) or cannot load, importing still succeeds
 * silently, nothing is registered, and {@link cpuKernelsInfo} says why.
 *
 * Environment variables, read once at import: `BLORA_CPU_KERNELS=off` keeps the TypeScript
 * kernels; `BLORA_CPU_KERNELS_ADDON` is the path of the addon; `BLORA_CPU_ISA` (`auto`,
 * `avx512`, `avx2`, `scalar`), `BLORA_CPU_THREADS`, `BLORA_CPU_QUANT_ACTIVATIONS` (`float32`,
 * `int8`) and `BLORA_CPU_BUFFER_POOL_MIB` set what {@link configureCpuKernels} sets.
 *
 * @packageDocumentation
 */
import { findKernel, registerKernel, type KernelFn } from '@blora/tensor';
// The quantized-weight ops must have their TypeScript kernels registered before they are wrapped.
import '@blora/quant';
import { nativeAttention, nativeAttentionBackward } from './attention.js';
import { nativeActivation, nativeBinary, nativeSiluBackward, nativeSiluMul, type NativeActivationOp, type NativeBinaryOp } from './elementwise.js';
import { BufferPool, installBufferPool, type BufferPoolStats } from './buffer-pool.js';
import { nativeCopy, nativeRope, nativeSum } from './layout.js';
import { nativeMatmul } from './matmul.js';
import {
  ISA_CHOICES, QUANT_ACTIVATIONS, loadAddon, type IsaChoice, type NativeAddon, type NativeIsa, type QuantActivations,
} from './native.js';
import { nativeAvgPool1d, nativeRepeatInterleave } from './pool.js';
import { nativeFourBitMatmul, nativeIntMatmul, quantSettings } from './quant.js';
import { nativeSoftmax } from './softmax.js';
import { nativeAdamwStep, nativeCrossEntropy, nativeCrossEntropyBackward, nativeRmsNorm, nativeRmsNormBackward } from './training.js';

export type { IsaChoice, NativeIsa, QuantActivations } from './native.js';
export { BufferPool, installBufferPool, type BufferPoolStats } from './buffer-pool.js';

const MIB = 2 ** 20;

/** The choice that keeps the instruction set in use. */
const CHOICE_OF: Record<NativeIsa, IsaChoice> = { avx512: 'avx512', 'avx2+fma': 'avx2', scalar: 'scalar' };

/** Which CPU kernels are active: the native ones (and how they run) or the TypeScript ones (and why). */
export type CpuKernelsInfo =
  | {
    /** The native kernels are registered. */
    native: true;
    /** Instruction set of the inner loops. */
    isa: NativeIsa;
    /** The instruction sets this CPU (and OS) and this build support, widest first; 'scalar' always. */
    supported: readonly NativeIsa[];
    /** Threads the kernels use, the calling thread included. */
    threads: number;
    /** Activations of the 4-bit matrix-vector products ('float32' unless int8 was chosen). */
    quantActivations: QuantActivations;
    /** Capacity of the pool of released CPU tensor buffers, in MiB (0: off). */
    bufferPoolMiB: number;
    /** Ops whose `cpu` kernel is now native (for the cases it handles). */
    ops: readonly string[];
  }
  | {
    /** The TypeScript kernels are in use. */
    native: false;
    /** Why the TypeScript kernels are in use. */
    reason: string;
  };

/** Options of {@link configureCpuKernels}. */
export interface CpuKernelsOptions {
  /**
   * Inner loops: 'auto' (the widest the CPU and OS support: AVX-512, else AVX2 + FMA, else
   * portable C++), 'avx512', 'avx2' or 'scalar'. Default: keep the current ones.
   */
  isa?: IsaChoice;
  /** Threads, the calling thread included; 0 means every CPU this process may use. */
  threads?: number;
  /**
   * Activations of the forward products with 4-bit weights (`nf4Matmul`, `int4Matmul`) at up
   * to 32 rows, the matrix-vector products of generation: 'float32' (exact, the default, and
   * what training uses: the backward products and larger batches are always float32) or
   * 'int8' (activations rounded to int8 per block of 32 and multiplied in integer arithmetic,
   * like onnxruntime's MatMulNBits at accuracy_level 4; NF4 / FP4 tables rounded to int8
   * levels). Default: keep the current setting.
   */
  quantActivations?: QuantActivations;
  /**
   * Capacity of the pool of released CPU tensor buffers, in MiB: buffers that `dispose` or
   * `tidy` release are kept (per dtype and size, up to this many bytes) and handed out again,
   * zero-filled, to later ops, which saves the allocation, the page faults of fresh memory
   * and the garbage collections that external memory triggers. 0 turns it off and frees what
   * it holds. Default 1024 (BLORA_CPU_BUFFER_POOL_MIB).
   */
  bufferPoolMiB?: number;
}

// Each native kernel remembers the TypeScript kernel it wraps, so that loading a second copy
// of this package wraps the original kernel rather than the first copy's wrapper.
const WRAPPED = Symbol.for('@blora/cpu-kernels/wrapped');
type NativeKernel = KernelFn & { [WRAPPED]?: KernelFn };

function replaceCpuKernel(op: string, make: (fallback: KernelFn) => KernelFn): boolean {
  const current = findKernel(op, 'cpu') as NativeKernel | undefined;
  if (!current) return false;
  const fallback = current[WRAPPED] ?? current;
  const kernel: NativeKernel = make(fallback);
  kernel[WRAPPED] = fallback;
  registerKernel(op, 'cpu', kernel);
  return true;
}

function registerAll(addon: NativeAddon): string[] {
  const makers: Record<string, (fallback: KernelFn) => KernelFn> = {
    matmul: (f) => nativeMatmul(addon, f),
    softmax: (f) => nativeSoftmax(addon, false, f),
    logSoftmax: (f) => nativeSoftmax(addon, true, f),
    avgPool1d: (f) => nativeAvgPool1d(addon, f),
    repeatInterleave: (f) => nativeRepeatInterleave(addon, f),
    nf4Matmul: (f) => nativeFourBitMatmul(addon, false, f),
    nf4MatmulT: (f) => nativeFourBitMatmul(addon, true, f),
    int4Matmul: (f) => nativeIntMatmul(addon, 4, false, f),
    int4MatmulT: (f) => nativeIntMatmul(addon, 4, true, f),
    int8Matmul: (f) => nativeIntMatmul(addon, 8, false, f),
    int8MatmulT: (f) => nativeIntMatmul(addon, 8, true, f),
    attention: (f) => nativeAttention(addon, f),
    attentionBackward: (f) => nativeAttentionBackward(addon, f),
    rmsNorm: (f) => nativeRmsNorm(addon, f),
    rmsNormBackward: (f) => nativeRmsNormBackward(addon, f),
    crossEntropy: (f) => nativeCrossEntropy(addon, f),
    crossEntropyBackward: (f) => nativeCrossEntropyBackward(addon, f),
    adamwStep: (f) => nativeAdamwStep(addon, f),
    copy: (f) => nativeCopy(addon, f),
    rope: (f) => nativeRope(addon, f),
    sum: (f) => nativeSum(addon, false, f),
    mean: (f) => nativeSum(addon, true, f),
  };
  for (const op of ['add', 'sub', 'mul', 'div'] as NativeBinaryOp[]) makers[op] = (f) => nativeBinary(addon, op, f);
  for (const op of ['sigmoid', 'silu'] as NativeActivationOp[]) makers[op] = (f) => nativeActivation(addon, op, f);
  makers.siluBackward = (f) => nativeSiluBackward(addon, f);
  makers.siluMul = (f) => nativeSiluMul(addon, f);
  return Object.entries(makers).filter(([op, make]) => replaceCpuKernel(op, make)).map(([op]) => op).sort();
}

const loaded = loadAddon();
const activeAddon: NativeAddon | null = loaded.addon;
const registeredOps: readonly string[] = activeAddon ? Object.freeze(registerAll(activeAddon)) : [];
const notLoadedReason = loaded.addon === null ? loaded.reason : '';
// The buffer pool comes with the native kernels (BLORA_CPU_KERNELS=off leaves the engine's allocation alone).
const bufferPool = loaded.addon ? installBufferPool(new BufferPool(loaded.settings.bufferPoolMiB * MIB)) : null;
if (loaded.addon) quantSettings.activations = loaded.settings.quantActivations;

/** Which kernels are active; when native, how they run (instruction set, threads). */
export function cpuKernelsInfo(): CpuKernelsInfo {
  if (!activeAddon) return { native: false, reason: notLoadedReason };
  const info = activeAddon.info();
  const supported: NativeIsa[] = [];
  if (info.avx512Supported) supported.push('avx512');
  if (info.avx2Supported) supported.push('avx2+fma');
  supported.push('scalar');
  return {
    native: true,
    isa: info.isa,
    supported,
    threads: info.threads,
    quantActivations: quantSettings.activations,
    bufferPoolMiB: (bufferPool?.stats().capacityBytes ?? 0) / MIB,
    ops: registeredOps,
  };
}

/** What the pool of released CPU tensor buffers holds and has done; null without the native kernels. */
export function bufferPoolStats(): BufferPoolStats | null {
  return bufferPool?.stats() ?? null;
}

/**
 * Changes the instruction set or thread count of the native kernels (for example to leave a
 * core free). Returns the resulting {@link cpuKernelsInfo}; a no-op when the TypeScript kernels
 * are in use. Throws on invalid options or when 'avx2' is requested on a CPU without it.
 */
export function configureCpuKernels(options: CpuKernelsOptions): CpuKernelsInfo {
  const current = activeAddon?.info();
  const isa = options.isa ?? (current ? CHOICE_OF[current.isa] : 'auto');
  if (!ISA_CHOICES.includes(isa)) {
    throw new RangeError(`configureCpuKernels: isa must be one of ${ISA_CHOICES.map((c) => `'${c}'`).join(', ')}, got ${String(isa)}`);
  }
  const threads = options.threads ?? current?.threads ?? 0;
  if (!Number.isInteger(threads) || threads < 0) {
    throw new RangeError(`configureCpuKernels: threads must be a non-negative integer, got ${String(threads)}`);
  }
  const quantActivations = options.quantActivations ?? quantSettings.activations;
  if (!QUANT_ACTIVATIONS.includes(quantActivations)) {
    throw new RangeError(`configureCpuKernels: quantActivations must be 'float32' or 'int8', got ${String(quantActivations)}`);
  }
  const poolMiB = options.bufferPoolMiB;
  if (poolMiB !== undefined && (typeof poolMiB !== 'number' || !Number.isFinite(poolMiB) || poolMiB < 0)) {
    throw new RangeError(`configureCpuKernels: bufferPoolMiB must be a non-negative number, got ${String(poolMiB)}`);
  }
  if (activeAddon) {
    activeAddon.configure(isa, threads);
    quantSettings.activations = quantActivations;
    if (poolMiB !== undefined) bufferPool?.resize(poolMiB * MIB);
  }
  return cpuKernelsInfo();
}

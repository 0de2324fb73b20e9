/**
 * @blora/cpu-kernels: native CPU kernels for @blora/tensor.
 *
 * Importing this package loads a compiled C++ addon and replaces the TypeScript kernels of
 * the `cpu` device for the cases it handles: float32 matmul (packed, cache-blocked GEMM with
 * an AVX2/FMA micro-kernel and a thread pool; matrix-vector products stream the matrix once),
 * float32 add/sub/mul/div on dense or broadcast-scalar operands, sigmoid/silu of dense
 * tensors, softmax/logSoftmax over the last axis, avgPool1d and repeatInterleave, the float32
 * products with quantized weights of
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
 * `avx2`, `scalar`) and `BLORA_CPU_THREADS` set what {@link configureCpuKernels} sets.
 *
 * @packageDocumentation
 */
import { findKernel, registerKernel, type KernelFn } from '@blora/tensor';
// The quantized-weight ops must have their TypeScript kernels registered before they are wrapped.
import '@blora/quant';
import { nativeAttention, nativeAttentionBackward } from './attention.js';
import { nativeActivation, nativeBinary, type NativeActivationOp, type NativeBinaryOp } from './elementwise.js';
import { nativeMatmul } from './matmul.js';
import { loadAddon, type NativeAddon, type NativeIsa } from './native.js';
import { nativeAvgPool1d, nativeRepeatInterleave } from './pool.js';
import { nativeFourBitMatmul, nativeIntMatmul } from './quant.js';
import { nativeSoftmax } from './softmax.js';
import { nativeAdamwStep, nativeCrossEntropy, nativeCrossEntropyBackward, nativeRmsNorm, nativeRmsNormBackward } from './training.js';

export type { NativeIsa } from './native.js';

/** Which CPU kernels are active: the native ones (and how they run) or the TypeScript ones (and why). */
export type CpuKernelsInfo =
  | {
    /** The native kernels are registered. */
    native: true;
    /** Instruction set of the inner loops. */
    isa: NativeIsa;
    /** Threads the kernels use, the calling thread included. */
    threads: number;
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
  /** Inner loops: 'auto' (AVX2 + FMA when the CPU has them, default), 'avx2' or 'scalar'. */
  isa?: 'auto' | 'avx2' | 'scalar';
  /** Threads, the calling thread included; 0 means every CPU this process may use. */
  threads?: number;
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
  };
  for (const op of ['add', 'sub', 'mul', 'div'] as NativeBinaryOp[]) makers[op] = (f) => nativeBinary(addon, op, f);
  for (const op of ['sigmoid', 'silu'] as NativeActivationOp[]) makers[op] = (f) => nativeActivation(addon, op, f);
  return Object.entries(makers).filter(([op, make]) => replaceCpuKernel(op, make)).map(([op]) => op).sort();
}

const loaded = loadAddon();
const activeAddon: NativeAddon | null = loaded.addon;
const registeredOps: readonly string[] = activeAddon ? Object.freeze(registerAll(activeAddon)) : [];
const notLoadedReason = loaded.addon === null ? loaded.reason : '';

/** Which kernels are active; when native, how they run (instruction set, threads). */
export function cpuKernelsInfo(): CpuKernelsInfo {
  if (!activeAddon) return { native: false, reason: notLoadedReason };
  const info = activeAddon.info();
  return { native: true, isa: info.isa, threads: info.threads, ops: registeredOps };
}

/**
 * Changes the instruction set or thread count of the native kernels (for example to leave a
 * core free). Returns the resulting {@link cpuKernelsInfo}; a no-op when the TypeScript kernels
 * are in use. Throws on invalid options or when 'avx2' is requested on a CPU without it.
 */
export function configureCpuKernels(options: CpuKernelsOptions): CpuKernelsInfo {
  const current = activeAddon?.info();
  const isa = options.isa ?? (current?.isa === 'scalar' ? 'scalar' : 'auto');
  if (isa !== 'auto' && isa !== 'avx2' && isa !== 'scalar') {
    throw new RangeError(`configureCpuKernels: isa must be 'auto', 'avx2' or 'scalar', got ${String(isa)}`);
  }
  const threads = options.threads ?? current?.threads ?? 0;
  if (!Number.isInteger(threads) || threads < 0) {
    throw new RangeError(`configureCpuKernels: threads must be a non-negative integer, got ${String(threads)}`);
  }
  if (activeAddon) activeAddon.configure(isa, threads);
  return cpuKernelsInfo();
}

// Locating, loading and configuring the compiled addon. Loading never throws: every failure
// becomes a reason string, and the TypeScript kernels stay in place.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Instruction sets the addon can run ('avx512': AVX-512 F, BW, DQ, VL and VNNI). */
export type NativeIsa = 'avx512' | 'avx2+fma' | 'scalar';

/** Instruction sets `configure` accepts: 'auto' picks the widest one this CPU (and OS) supports. */
export type IsaChoice = 'auto' | 'avx512' | 'avx2' | 'scalar';

/** The values of {@link IsaChoice}. */
export const ISA_CHOICES: readonly IsaChoice[] = ['auto', 'avx512', 'avx2', 'scalar'];

/** What the addon reports about itself. */
export interface NativeInfo {
  /** Version of the JavaScript-facing interface the binary was built with. */
  version: number;
  /** Instruction set of the inner loops in use. */
  isa: NativeIsa;
  /** Threads used by the kernels (the caller included). */
  threads: number;
  /** Whether this CPU supports AVX2 and FMA (and the binary contains those loops). */
  avx2Supported: boolean;
  /**
   * Whether this CPU supports AVX-512 F, BW, DQ, VL and VNNI, the OS saves the zmm registers,
   * and the binary contains those loops.
   */
  avx512Supported: boolean;
}

/**
 * The functions of the compiled addon. Typed arrays are tensor storages; offsets, sizes and
 * strides are in elements. The addon checks that every element it touches lies inside its array.
 */
export interface NativeAddon {
  info(): NativeInfo;
  /** Selects the inner loops ('auto' picks the widest available) and the thread count (0 = all CPUs). */
  configure(isa: IsaChoice, threads: number): NativeInfo;
  /**
   * out[outOffset + t*m*n + i*n + j] = sum over p of a[ao_t + i*rsa + p*csa] * b[bo_t + p*rsb + j*csb],
   * where offsets holds the pairs (ao_t, bo_t) of the batch.
   */
  matmulF32(
    a: Float32Array, b: Float32Array, out: Float32Array, outOffset: number,
    m: number, n: number, k: number, rsa: number, csa: number, rsb: number, csb: number, offsets: Float64Array,
  ): void;
  /** out[i] = x[i*xStep] op y[i*yStep] (from the offsets; steps 0 or 1); op 0..3 = add, sub, mul, div. */
  binaryF32(
    op: number, x: Float32Array, xOffset: number, xStep: number, y: Float32Array, yOffset: number, yStep: number,
    out: Float32Array, outOffset: number, n: number,
  ): void;
  /** out[outOffset + i] = sigmoid (op 0) or silu (op 1) of x[xOffset + i] for i < n. */
  activationF32(op: number, x: Float32Array, xOffset: number, out: Float32Array, outOffset: number, n: number): void;
  /** Softmax (or log-softmax) of `rows` contiguous rows of length n. */
  softmaxF32(x: Float32Array, xOffset: number, out: Float32Array, outOffset: number, rows: number, n: number, log: boolean): void;
  /** out[o] = mean of the k values starting at x[xOffset + o*k]. */
  avgPool1dF32(x: Float32Array, xOffset: number, out: Float32Array, outOffset: number, outputs: number, k: number): void;
  /** Writes each of `blocks` runs of `inner` values `repeats` times in a row. */
  repeatInterleaveF32(
    x: Float32Array, xOffset: number, out: Float32Array, outOffset: number, blocks: number, inner: number, repeats: number,
  ): void;
  /** out[i] = exp(x[i]) with the approximation the softmax kernel uses. */
  expF32(x: Float32Array, out: Float32Array): void;
  /**
   * y = x W^T (or x W when `transposed`) for a 4-bit absmax weight W [outFeatures, inFeatures]
   * (NF4 / FP4: W[i] = table[code_i] * absmax[i / blocksize]). x holds `rows` rows, `ldx` apart
   * and each contiguous; out is dense [rows, outFeatures] (transposed: [rows, inFeatures]).
   * `int8Activations`: y = x W^T with at most 32 rows may round x (and the table) to int8
   * where the layout allows (see {@link QuantActivations}).
   */
  nf4MatmulF32(
    transposed: boolean, x: Float32Array, xOffset: number, rows: number, ldx: number,
    packed: Uint8Array, packedOffset: number, absmax: Float32Array, absmaxOffset: number,
    table: Float32Array, tableOffset: number, out: Float32Array, outOffset: number,
    outFeatures: number, inFeatures: number, blocksize: number, int8Activations?: boolean,
  ): void;
  /**
   * As nf4MatmulF32 for an integer-block weight (W = scale * q + offset per block of
   * blockRows x blockCols); scales and offsets are both Float32Array or both Uint16Array
   * (float16 bit patterns).
   */
  intMatmulF32(
    bits: 4 | 8, transposed: boolean, x: Float32Array, xOffset: number, rows: number, ldx: number,
    codes: Uint8Array, codesOffset: number, scales: Float32Array | Uint16Array, scalesOffset: number,
    offsets: Float32Array | Uint16Array, offsetsOffset: number, out: Float32Array, outOffset: number,
    outFeatures: number, inFeatures: number, blockRows: number, blockCols: number, int8Activations?: boolean,
  ): void;
  /**
   * Attention forward. `geometry` holds (offset, batch stride, head stride, row stride) of q, k,
   * v, o, lse in that order (the last dim of each is dense); `dims` is [B, H, T, D, Hkv, S, Dv];
   * window 0 means none.
   */
  attentionF32(
    q: Float32Array, k: Float32Array, v: Float32Array, o: Float32Array, lse: Float32Array,
    geometry: Float64Array, dims: Float64Array, scale: number, causal: boolean, window: number,
  ): void;
  /** rmsNorm of `rows` rows of d values (x rows ldx apart, y dense), writing y and rstd. */
  rmsNormF32(
    x: Float32Array, xOffset: number, ldx: number, weight: Float32Array, weightOffset: number,
    y: Float32Array, yOffset: number, rstd: Float32Array, rstdOffset: number, rows: number, d: number, eps: number, offset: number,
  ): void;
  /** rmsNorm backward: dx (dense) and dweight from dy and x (rows lddy / ldx apart) and rstd. */
  rmsNormBackwardF32(
    dy: Float32Array, dyOffset: number, lddy: number, x: Float32Array, xOffset: number, ldx: number,
    weight: Float32Array, weightOffset: number, rstd: Float32Array, rstdOffset: number,
    dx: Float32Array, dxOffset: number, dweight: Float32Array, dweightOffset: number, rows: number, d: number, offset: number,
  ): void;
  /** Cross-entropy: fills lse and returns the summed loss of the rows whose target is not ignoreIndex. */
  crossEntropyF32(
    logits: Float32Array, logitsOffset: number, ld: number, targets: Int32Array, targetsOffset: number,
    lse: Float32Array, lseOffset: number, rows: number, v: number, ignoreIndex: number,
  ): number;
  /** Cross-entropy backward: dlogits (dense) = scale (softmax - onehot), zero rows for ignored targets. */
  crossEntropyBackwardF32(
    logits: Float32Array, logitsOffset: number, ld: number, targets: Int32Array, targetsOffset: number,
    lse: Float32Array, lseOffset: number, dlogits: Float32Array, dlogitsOffset: number,
    rows: number, v: number, ignoreIndex: number, scale: number,
  ): void;
  /** out (dense) = the elements x[xOffset + sum of i_d * strides[d]] for i_d < sizes[d] (at most 8 dims). */
  copyF32(x: Float32Array, xOffset: number, sizes: Float64Array, strides: Float64Array, out: Float32Array, outOffset: number): void;
  /**
   * Rotary embeddings of x [B, H, T, Dh] (geometry [B, H, T, Dh, sb, sh, st]; last dim dense)
   * with dense [T, Dh / 2] tables into dense out; `inverse` rotates by the negative angles.
   */
  ropeF32(
    x: Float32Array, xOffset: number, geometry: Float64Array, cos: Float32Array, cosOffset: number,
    sin: Float32Array, sinOffset: number, out: Float32Array, outOffset: number, inverse: boolean,
  ): void;
  /** out [outer, inner] = sums over the middle dim of dense x [outer, reduced, inner], divided by divisor. */
  sumF32(
    x: Float32Array, xOffset: number, outer: number, reduced: number, inner: number,
    out: Float32Array, outOffset: number, divisor: number,
  ): void;
  /** One AdamW update of n dense values, in place (the bias-corrected constants precomputed). */
  adamwStepF32(
    param: Float32Array, paramOffset: number, grad: Float32Array, gradOffset: number, m: Float32Array, mOffset: number,
    v: Float32Array, vOffset: number, n: number,
    beta1: number, beta2: number, eps: number, decay: number, stepSize: number, sqrtCorrection2: number,
  ): void;
  /** Attention backward; `geometry` covers dO, q, k, v, o, lse, dq, dk, dv in that order. */
  attentionBackwardF32(
    dO: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, o: Float32Array, lse: Float32Array,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
    geometry: Float64Array, dims: Float64Array, scale: number, causal: boolean, window: number,
  ): void;
}

/**
 * Activations of the forward products with 4-bit weights (`nf4Matmul`, `int4Matmul`) at up to
 * 32 rows: 'float32' (exact float32 arithmetic, the default) or 'int8' (rounded to int8 per
 * block of 32 and multiplied in integer arithmetic, like onnxruntime's MatMulNBits at
 * accuracy_level 4; NF4 / FP4 tables rounded to int8 levels).
 */
export type QuantActivations = 'float32' | 'int8';

/** The values of {@link QuantActivations}. */
export const QUANT_ACTIVATIONS: readonly QuantActivations[] = ['float32', 'int8'];

/** Interface version this package expects from the binary. */
export const ADDON_VERSION = 4;

/** Environment variables read when the package is imported. */
export interface NativeEnv {
  /** 'off' (or '0') keeps the TypeScript kernels. */
  BLORA_CPU_KERNELS?: string;
  /** Path of the compiled addon (default: the package's build/Release/blora_cpu.node). */
  BLORA_CPU_KERNELS_ADDON?: string;
  /** Inner loops to use: 'auto' (default), 'avx512', 'avx2' or 'scalar'. */
  BLORA_CPU_ISA?: string;
  /** Kernel threads, a positive integer (default: the CPUs this process may use). */
  BLORA_CPU_THREADS?: string;
  /** Activations of the 4-bit matrix-vector products: 'float32' (default) or 'int8'. */
  BLORA_CPU_QUANT_ACTIVATIONS?: string;
  /** Capacity of the buffer pool in MiB (0: off; default DEFAULT_BUFFER_POOL_MIB). */
  BLORA_CPU_BUFFER_POOL_MIB?: string;
}

/** Default capacity of the pool of released CPU tensor buffers, in MiB. */
export const DEFAULT_BUFFER_POOL_MIB = 1024;

/** Outcome of loading the addon. */
export type LoadResult =
  | { addon: NativeAddon; path: string; settings: EnvSettings }
  | { addon: null; reason: string };

/** Where the build script puts the addon. */
export function defaultAddonPath(): string {
  return fileURLToPath(new URL('../build/Release/blora_cpu.node', import.meta.url));
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Settings read from the environment when the package is imported. */
export interface EnvSettings {
  isa: IsaChoice;
  threads: number;
  quantActivations: QuantActivations;
  bufferPoolMiB: number;
}

/** The settings `configure` takes, parsed from the environment; a string names an invalid variable. */
export function settingsFromEnv(env: NativeEnv): EnvSettings | string {
  const isa = (env.BLORA_CPU_ISA ?? 'auto') as IsaChoice;
  if (!ISA_CHOICES.includes(isa)) {
    return `BLORA_CPU_ISA=${isa} is not one of ${ISA_CHOICES.join(', ')}`;
  }
  const threadsText = env.BLORA_CPU_THREADS;
  const threads = threadsText === undefined || threadsText === '' ? 0 : Number(threadsText);
  if (!Number.isInteger(threads) || threads < 0) {
    return `BLORA_CPU_THREADS=${threadsText} is not a positive integer`;
  }
  const quantActivations = (env.BLORA_CPU_QUANT_ACTIVATIONS || 'float32') as QuantActivations;
  if (!QUANT_ACTIVATIONS.includes(quantActivations)) {
    return `BLORA_CPU_QUANT_ACTIVATIONS=${quantActivations} is not one of ${QUANT_ACTIVATIONS.join(', ')}`;
  }
  const poolText = env.BLORA_CPU_BUFFER_POOL_MIB;
  const bufferPoolMiB = poolText === undefined || poolText === '' ? DEFAULT_BUFFER_POOL_MIB : Number(poolText);
  if (!Number.isFinite(bufferPoolMiB) || bufferPoolMiB < 0) {
    return `BLORA_CPU_BUFFER_POOL_MIB=${poolText} is not a non-negative number`;
  }
  return { isa, threads, quantActivations, bufferPoolMiB };
}

/** Loads and configures the addon according to `env`; never throws. */
export function loadAddon(env: NativeEnv = process.env as NativeEnv): LoadResult {
  const switchValue = env.BLORA_CPU_KERNELS?.toLowerCase();
  if (switchValue === 'off' || switchValue === '0') {
    return { addon: null, reason: `disabled by BLORA_CPU_KERNELS=${env.BLORA_CPU_KERNELS}` };
  }
  const settings = settingsFromEnv(env);
  if (typeof settings === 'string') return { addon: null, reason: settings };
  const path = env.BLORA_CPU_KERNELS_ADDON || defaultAddonPath();
  if (!existsSync(path)) {
    return { addon: null, reason: `native addon not built (no ${path}); build it with the package's build script` };
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    return { addon: null, reason: `native addon at ${path} failed to load: ${message(e)}` };
  }
  const version = typeof addon.info === 'function' ? addon.info().version : undefined;
  if (version !== ADDON_VERSION) {
    return { addon: null, reason: `native addon at ${path} is a stale build (interface ${String(version)}, expected ${ADDON_VERSION}); rebuild it` };
  }
  try {
    addon.configure(settings.isa, settings.threads);
  } catch (e) {
    return { addon: null, reason: message(e) };
  }
  return { addon, path, settings };
}

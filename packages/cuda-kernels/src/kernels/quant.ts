// The quantized-weight ops of @blora/quant on the cuda device (same op names, inputs and
// attrs as its CPU kernels). W is [out, in]:
// - `*Dequantize` and `dequantizeBlockwise8` decode on the GPU, bit-identical to the CPU;
// - `*Matmul` (y = x · Wᵀ) with at most `quantGemvMaxRows` activation rows runs a GEMV
//   kernel that reads each code once and decodes on the fly (on the tensor cores for
//   bfloat16 / float16 activations);
// - larger `*Matmul` and every `*MatmulT` (dx = dy · W) with bfloat16 / float16 activations run
//   the fused dequantize + GEMM kernel, which decodes W tile by tile on chip (on Hopper the
//   TMA + wgmma one, K split over blocks when the tiles are few: native/quant_gemm_wgmma.cuh),
//   when the layout suits it
//   (inFeatures % 32 == 0, power-of-two blocks; see native/kernels.h); BLORA_CUDA_QUANT_GEMM=
//   dequant (or setQuantGemmPath) sends them to the path below instead;
// - everything else decodes W into a scratch block of the activation dtype, then runs the
//   device's GEMM. The scratch block holds out · in elements for the duration of the op.
// An addend (the optional fifth input, float32 [..., n / addLambda]) is added by the fused
// GEMMs' and the tensor-core GEMVs' epilogues before their one rounding; after the other GEMV
// and the dequantize paths, and for a float64 addend, one more pass adds it to the rounded
// product (repeatAdd, in place). A low-rank addend (a sixth input, its factor [n / addLambda,
// addRank]) goes to the tensor-core GEMVs' epilogues, which form its dot products there; every
// other path forms addend · factorᵀ with the device's matmul first.
import { registerKernel, type Attrs, type DType, type Tensor } from '@blora/tensor';
import { bufferOf, layoutArg, tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { reshapeDense, usedInPlace, withDense } from './dense.js';
import { withScratch } from './scratch.js';

/** The addend of a product as the native kernels take it (dense descriptors). */
interface NativeAddend {
  /** [M, n / lambda], or [M, rank] when low-rank. */
  values: Float64Array;
  lambda: number;
  scale: number;
  dtype: DType;
  /** Low-rank: the factor [n / lambda, rank]. */
  factor?: Float64Array;
}

/** The op's addend (and factor, if low-rank) for `rows` product rows of `n` as the native kernels take it. */
function nativeAddend(values: Float64Array, factor: Float64Array | undefined, dtype: DType, rows: number, n: number, attrs: Attrs): NativeAddend {
  const lambda = attrs['addLambda'] as number;
  const scale = attrs['addScale'] as number;
  if (!factor) return { values: reshapeDense(values, [rows, n / lambda]), lambda, scale, dtype };
  const rank = attrs['addRank'] as number;
  return { values: reshapeDense(values, [rows, rank]), lambda, scale, dtype, factor: reshapeDense(factor, [n / lambda, rank]) };
}

/** y [rows, n] += scale · repeatInterleave(addend, lambda) in a pass of its own (a low-rank addend formed first). */
function addRepeated(add: NativeAddend, y: Float64Array, rows: number, n: number): void {
  const addon = native();
  const factor = add.factor;
  if (!factor) {
    addon.repeatAdd(add.values, y, y, add.lambda, add.scale);
    return;
  }
  const width = n / add.lambda;
  const rank = factor[5]!;  // the factor's dense [width, rank] descriptor
  withScratch(add.dtype, rows * width, (address) => {
    const dense = matrixArg(address, 0, add.dtype, rows, width);
    addon.matmul(add.values, layoutArg(factor[0]!, factor[1]!, add.dtype, [rank, width], [1, rank]), dense);
    addon.repeatAdd(dense, y, y, add.lambda, add.scale);
  });
}

/** How one quantized format decodes and multiplies, given dense descriptors of its tensors. */
interface WeightFormat {
  /** Writes W [out, in] into `out` (any float dtype, contiguous). */
  dequantize(weight: Float64Array[], out: Float64Array): void;
  /**
   * y [M, out] = x [M, in] · Wᵀ for M <= quantGemvMaxRows; settled: see @blora/quant's SettledWeight.
   * True when it also added the float32 `addend` (or none was given).
   */
  gemv(x: Float64Array, weight: Float64Array[], out: Float64Array, settled: boolean, addend?: NativeAddend): boolean;
  /**
   * The fused tensor-core product (x · Wᵀ, or x · W when `transposed`) plus the float32
   * addend (not low-rank), if any, in its epilogue; false when it does not apply (nothing ran).
   */
  gemm(x: Float64Array, weight: Float64Array[], out: Float64Array, transposed: boolean, addend?: NativeAddend): boolean;
}

function dims(attrs: Attrs): { outFeatures: number; inFeatures: number } {
  return { outFeatures: attrs['outFeatures'] as number, inFeatures: attrs['inFeatures'] as number };
}

function fourBitFormat(attrs: Attrs): WeightFormat {
  const { outFeatures, inFeatures } = dims(attrs);
  const blocksize = attrs['blocksize'] as number;
  return {
    dequantize: ([packed, absmax, table], out) =>
      native().fourBitDequantize(packed!, absmax!, table!, out, outFeatures, inFeatures, blocksize),
    gemv: (x, [packed, absmax, table], out, settled, addend) =>
      native().fourBitGemv(x, packed!, absmax!, table!, out, outFeatures, inFeatures, blocksize, settled,
        addend?.values ?? null, addend?.lambda ?? 1, addend?.scale ?? 1, addend?.factor ?? null),
    gemm: (x, [packed, absmax, table], out, transposed, addend) =>
      native().fourBitGemm(x, packed!, absmax!, table!, out, outFeatures, inFeatures, blocksize, transposed,
        addend?.values ?? null, addend?.lambda ?? 1, addend?.scale ?? 1),
  };
}

function intFormat(bits: 4 | 8, attrs: Attrs): WeightFormat {
  const { outFeatures, inFeatures } = dims(attrs);
  const blockRows = attrs['blockRows'] as number;
  const blockCols = attrs['blockCols'] as number;
  return {
    dequantize: ([codes, scales, offsets], out) =>
      native().intDequantize(codes!, scales!, offsets!, out, bits, outFeatures, inFeatures, blockRows, blockCols),
    gemv: (x, [codes, scales, offsets], out, settled, addend) =>
      native().intGemv(x, codes!, scales!, offsets!, out, bits, outFeatures, inFeatures, blockRows, blockCols, settled,
        addend?.values ?? null, addend?.lambda ?? 1, addend?.scale ?? 1, addend?.factor ?? null),
    gemm: (x, [codes, scales, offsets], out, transposed, addend) =>
      native().intGemm(x, codes!, scales!, offsets!, out, bits, outFeatures, inFeatures, blockRows, blockCols, transposed,
        addend?.values ?? null, addend?.lambda ?? 1, addend?.scale ?? 1),
  };
}

/**
 * How the 4-bit GEMMs above the GEMV size are taken: 'auto' and 'fused' run the fused kernel
 * where it applies, 'dequant' always decodes W into scratch and runs the dense GEMM. On an H200
 * at 4096 rows the fused Hopper kernel takes up to 10 % longer than decoding once for NF4 (0.28
 * against 0.26 ms at 4096²) and the same time for INT4, is 2.5-16x faster at 256 rows, and holds no
 * dense copy of W; a TinyLlama-shape training step takes 155 ms either way for QLoRA, 147-148
 * against 151-152 for Q-BLoRA.
 */
export type QuantGemmPath = 'auto' | 'fused' | 'dequant';

const QUANT_GEMM_PATHS: readonly QuantGemmPath[] = ['auto', 'fused', 'dequant'];
let quantGemmPath: QuantGemmPath | undefined;

function currentQuantGemmPath(): QuantGemmPath {
  if (quantGemmPath === undefined) {
    const given = process.env.BLORA_CUDA_QUANT_GEMM || 'auto';
    if (!(QUANT_GEMM_PATHS as readonly string[]).includes(given)) {
      throw new Error(`BLORA_CUDA_QUANT_GEMM must be ${QUANT_GEMM_PATHS.join(', ')}; got '${given}'`);
    }
    quantGemmPath = given as QuantGemmPath;
  }
  return quantGemmPath;
}

/**
 * Picks how the 4-bit GEMMs run for the rest of the process ('auto', 'fused' or 'dequant'),
 * overriding BLORA_CUDA_QUANT_GEMM; returns the previous path. For tests and benchmarks.
 */
export function setQuantGemmPath(path: QuantGemmPath): QuantGemmPath {
  if (!QUANT_GEMM_PATHS.includes(path)) throw new Error(`setQuantGemmPath: expected ${QUANT_GEMM_PATHS.join(', ')}; got '${String(path)}'`);
  const previous = currentQuantGemmPath();
  quantGemmPath = path;
  return previous;
}


/** A dense [rows, cols] matrix of `dtype` at `address` + `offset` elements. */
function matrixArg(address: number, offset: number, dtype: DType, rows: number, cols: number): Float64Array {
  return layoutArg(address, offset, dtype, [rows, cols], [cols, 1]);
}

/**
 * y = x · Wᵀ (`transposed` false: x [..., in] -> [..., out]) or dx = dy · W (`transposed`
 * true: dy [..., out] -> [..., in]) for the weight given by `format` and its tensors, plus
 * `scale · repeatInterleave(addend, lambda)` when an addend is given.
 */
function quantizedMatmul(format: WeightFormat, x: Tensor, weight: readonly Tensor[], out: Tensor, attrs: Attrs, transposed: boolean,
  addend?: Tensor, factor?: Tensor): void {
  const { outFeatures, inFeatures } = dims(attrs);
  const k = transposed ? outFeatures : inFeatures;
  const n = transposed ? inFeatures : outFeatures;
  const rows = x.numel / k;
  if (rows === 0) return;
  const y = matrixArg(bufferOf(out).address, out.offset, out.dtype, rows, n);
  withDense(addend ? (factor ? [addend, factor] : [addend]) : [], ([values, f]) => {
    const add = values && addend ? nativeAddend(values, f, addend.dtype, rows, n, attrs) : undefined;
    if (multiply(format, x, weight, y, rows, k, attrs, transposed, add?.dtype === 'float32' ? add : undefined)) return;
    if (add) addRepeated(add, y, rows, n);
  });
}

/** Runs the product into `y`; true when the GEMV or fused GEMM also added `addend` (given only when float32; low-rank: the GEMV only). */
function multiply(format: WeightFormat, x: Tensor, weight: readonly Tensor[], y: Float64Array, rows: number, k: number,
  attrs: Attrs, transposed: boolean, addend: NativeAddend | undefined): boolean {
  const { outFeatures, inFeatures } = dims(attrs);
  const addon = native();
  // A weight copied into scratch just before the launch is not settled, whatever the attrs say.
  const settled = attrs['settled'] === true && weight.every((t) => usedInPlace(t));
  return withDense([x, ...weight], ([xDense, ...w]) => {
    const a = reshapeDense(xDense!, [rows, k]);
    if (!transposed && rows <= addon.quantGemvMaxRows) return format.gemv(a, w, y, settled, addend) && addend !== undefined;
    if ((x.dtype === 'bfloat16' || x.dtype === 'float16') && currentQuantGemmPath() !== 'dequant') {
      if (addend && !addend.factor && format.gemm(a, w, y, transposed, addend)) return true;
      if (format.gemm(a, w, y, transposed)) return false;
    }
    withScratch(x.dtype, outFeatures * inFeatures, (scratch) => {
      format.dequantize(w, matrixArg(scratch, 0, x.dtype, outFeatures, inFeatures));
      // W as stored is [out, in]; the product wants Wᵀ [in, out] for y and W for dx.
      const b = transposed
        ? matrixArg(scratch, 0, x.dtype, outFeatures, inFeatures)
        : layoutArg(scratch, 0, x.dtype, [inFeatures, outFeatures], [1, inFeatures]);
      addon.matmul(a, b, y);
    });
    return false;
  });
}

/** Registers one format's matmul, transposed matmul and dequantize ops under `prefix`. */
function registerFormat(prefix: string, formatOf: (attrs: Attrs) => WeightFormat): void {
  registerKernel(`${prefix}Matmul`, 'cuda', ([x, ...rest], [out], attrs) => {
    const [weight, addend, factor] = [rest.slice(0, 3), rest[3], rest[4]];
    runKernel(`${prefix}Matmul`, [x!, ...rest, out!], () => quantizedMatmul(formatOf(attrs), x!, weight, out!, attrs, false, addend, factor));
  });
  registerKernel(`${prefix}MatmulT`, 'cuda', ([dy, ...rest], [out], attrs) => {
    const [weight, addend, factor] = [rest.slice(0, 3), rest[3], rest[4]];
    runKernel(`${prefix}MatmulT`, [dy!, ...rest, out!], () => quantizedMatmul(formatOf(attrs), dy!, weight, out!, attrs, true, addend, factor));
  });
  registerKernel(`${prefix}Dequantize`, 'cuda', (weight, [out], attrs) => {
    runKernel(`${prefix}Dequantize`, [...weight, out!], () =>
      withDense(weight, (w) => formatOf(attrs).dequantize(w, tensorArg(out!))));
  });
}

/**
 * The decode tile layouts (@blora/quant's decode-tiles.ts): 'nf4DecodeTiles' / 'int4DecodeTiles'
 * build them on the GPU; 'nf4MatmulTiles' / 'int4MatmulTiles' run the tensor-core GEMV on them, 16
 * activation rows a launch (bfloat16 / float16 activations only; with attrs.settled the GEMV starts
 * reading the tiles while the kernel before it finishes), then add the addend, if any, in one more
 * pass.
 */
function registerDecodeTiles(): void {
  registerKernel('nf4DecodeTiles', 'cuda', ([packed, absmax], [codes, tileAbsmax], attrs) => {
    const { outFeatures, inFeatures } = dims(attrs);
    runKernel('nf4DecodeTiles', [packed!, absmax!, codes!, tileAbsmax!], () =>
      withDense([packed!, absmax!], ([p, a]) =>
        native().fourBitDecodeTiles(p!, a!, tensorArg(codes!), tensorArg(tileAbsmax!), outFeatures, inFeatures, attrs['blocksize'] as number)));
  });
  registerKernel('int4DecodeTiles', 'cuda', ([codes, scales, offsets], [tiles, tileScales, tileOffsets], attrs) => {
    const { outFeatures, inFeatures } = dims(attrs);
    runKernel('int4DecodeTiles', [codes!, scales!, offsets!, tiles!, tileScales!, tileOffsets!], () =>
      withDense([codes!, scales!, offsets!], ([c, s, o]) =>
        native().intDecodeTiles(c!, s!, o!, tensorArg(tiles!), tensorArg(tileScales!), tensorArg(tileOffsets!), 4, outFeatures, inFeatures,
          attrs['blockRows'] as number, attrs['blockCols'] as number)));
  });
  for (const format of ['nf4', 'int4'] as const) {
    registerKernel(`${format}MatmulTiles`, 'cuda', ([x, codes, stat1, stat2, addend, factor], [out], attrs) =>
      tilesMatmul(format, x!, [codes!, stat1!, stat2!], addend ?? null, out!, attrs, factor));
  }
}

/**
 * The cuda kernel of 'nf4MatmulTiles' / 'int4MatmulTiles': out = x · Wᵀ (+ the addend) for W =
 * [tile codes, tile absmax, table] / [tile codes, tile scales, tile offsets].
 */
function tilesMatmul(format: 'nf4' | 'int4', x: Tensor, weight: readonly Tensor[], addend: Tensor | null, out: Tensor, attrs: Attrs,
  factor?: Tensor): void {
  const op = `${format}MatmulTiles`;
  const { outFeatures, inFeatures } = dims(attrs);
  const extra = addend ? (factor ? [addend, factor] : [addend]) : [];
  runKernel(op, [x, ...weight, ...extra, out], () => {
    const rows = x.numel / inFeatures;
    if (rows === 0) return;
    const y = matrixArg(bufferOf(out).address, out.offset, out.dtype, rows, outFeatures);
    // The kernel reads x in 16-byte loads: rows dense (inFeatures % 256 == 0) from an aligned start.
    // Tiles copied into scratch just before the launch are not settled, whatever the attrs say.
    const settled = attrs['settled'] === true && weight.every((t) => usedInPlace(t));
    withDense([x], ([xDense]) => withDense([...weight, ...extra], ([c, s1, s2, values, f]) => {
      const a = reshapeDense(xDense!, [rows, inFeatures]);
      // A float32 addend goes to the GEMV's epilogue; a float64 one is added in a pass of its own.
      const add = values && addend ? nativeAddend(values, f, addend.dtype, rows, outFeatures, attrs) : undefined;
      const inEpilogue = add?.dtype === 'float32' ? add : undefined;
      const added = format === 'nf4'
        ? native().fourBitTilesGemv(a, c!, s1!, s2!, y, outFeatures, inFeatures, 64, settled,
          inEpilogue?.values ?? null, inEpilogue?.lambda ?? 1, inEpilogue?.scale ?? 1, inEpilogue?.factor ?? null)
        : native().intTilesGemv(a, c!, s1!, s2!, y, 4, outFeatures, inFeatures, 1, 64, settled,
          inEpilogue?.values ?? null, inEpilogue?.lambda ?? 1, inEpilogue?.scale ?? 1, inEpilogue?.factor ?? null);
      if (add && !(added && inEpilogue)) addRepeated(add, y, rows, outFeatures);
    }), 16);
  });
}

/**
 * Runs the cuda kernel of 'nf4MatmulTiles' / 'int4MatmulTiles' into `out` (contiguous [..., out]
 * of x's dtype): weight = the three tensors of @blora/quant's nf4DecodeTiles (tile codes, tile
 * absmax, code table) or int4DecodeTiles (tile codes, tile scales, tile offsets), attrs
 * {outFeatures, inFeatures, settled?}. For benchmarks, which time it without allocation.
 */
export function quantMatmulTilesInto(format: 'nf4' | 'int4', x: Tensor, weight: readonly Tensor[], out: Tensor, attrs: Attrs): void {
  tilesMatmul(format, x, weight, null, out, attrs);
}

/** Registers the nf4 (NF4 / FP4), int4 and int8 ops, the NF4 decode tiles and dequantizeBlockwise8 for 'cuda'. */
export function registerQuantKernels(): void {
  registerFormat('nf4', fourBitFormat);
  registerDecodeTiles();
  registerFormat('int4', (attrs) => intFormat(4, attrs));
  registerFormat('int8', (attrs) => intFormat(8, attrs));
  registerKernel('dequantizeBlockwise8', 'cuda', ([codes, absmax, code], [out], attrs) => {
    runKernel('dequantizeBlockwise8', [codes!, absmax!, code!, out!], () =>
      withDense([codes!, absmax!, code!], ([c, a, table]) =>
        native().dequantizeBlockwise8(c!, a!, table!, tensorArg(out!), attrs['blocksize'] as number, attrs['offset'] as number)));
  });
}


// --- Direct entry points for benchmarks and tests: the same kernels as the ops, writing into
// tensors the caller owns (the fused paths allocate nothing, so they can be captured in a graph). ---

/** A quantized weight format of the ops above. */
export type QuantFormatName = 'nf4' | 'int4' | 'int8';

function formatNamed(name: QuantFormatName, attrs: Attrs): WeightFormat {
  return name === 'nf4' ? fourBitFormat(attrs) : intFormat(name === 'int4' ? 4 : 8, attrs);
}

/**
 * Runs the cuda kernel of `${format}Matmul` (`transposed` false) or `${format}MatmulT` into
 * `out`, a dense cuda tensor of the product's shape; `weight` and `attrs` as the op takes them.
 */
export function quantMatmulInto(format: QuantFormatName, x: Tensor, weight: readonly Tensor[], out: Tensor, attrs: Attrs,
  transposed: boolean): void {
  const op = `${format}Matmul${transposed ? 'T' : ''}`;
  runKernel(op, [x, ...weight, out], () => quantizedMatmul(formatNamed(format, attrs), x, weight, out, attrs, transposed));
}

/** Runs the cuda kernel of `${format}Dequantize` into `out` (contiguous [out, in], any float dtype). */
export function quantDequantizeInto(format: QuantFormatName, weight: readonly Tensor[], out: Tensor, attrs: Attrs): void {
  runKernel(`${format}Dequantize`, [...weight, out], () =>
    withDense(weight, (w) => formatNamed(format, attrs).dequantize(w, tensorArg(out))));
}

/** out = a · b with the device's GEMM (2-D operands of any strides, e.g. a transposed view; out contiguous). */
export function matmulInto(a: Tensor, b: Tensor, out: Tensor): void {
  runKernel('matmul', [a, b, out], () => native().matmul(tensorArg(a), tensorArg(b), tensorArg(out)));
}

/** dx = every element of dy repeated `kernel` times along the last dim, divided by kernel (dy and dx contiguous). */
export function avgPool1dBackwardInto(dy: Tensor, dx: Tensor, kernel: number): void {
  runKernel('avgPool1dBackward', [dy, dx], () => native().avgPool1dBackward(tensorArg(dy), tensorArg(dx), kernel));
}

/** out = sums of runs of `kernel` elements of the last dim of x (the gradient of repeatInterleave). */
export function sumRunsInto(x: Tensor, out: Tensor, kernel: number): void {
  runKernel('sumRuns', [x, out], () => native().sumRuns(tensorArg(x), tensorArg(out), kernel));
}

/**
 * Device time in milliseconds of one run of the launches `enqueue` queues: they are captured
 * once into a CUDA graph (not run), replayed once to warm up, then `replays` times back to back
 * between two events. `enqueue` must only launch kernels into memory that stays allocated until
 * this returns (no allocation, no read-back).
 */
export function deviceTimePerReplay(enqueue: () => void, replays: number): number {
  const addon = native();
  addon.synchronize();
  addon.graphBegin();
  try {
    enqueue();
  } catch (e) {
    addon.graphEnd(false);
    throw e;
  }
  const id = addon.graphEnd(true);
  try {
    addon.graphReplay(id, 1);
    return addon.graphReplay(id, replays) / replays;
  } finally {
    addon.graphDestroy(id);
  }
}

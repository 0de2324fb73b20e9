// matmul on the cuda device: float32/float64 on a tiled CUDA-core GEMM, bfloat16/float16 on tensor
// cores; a float32 / bfloat16 / float16 product of up to 16 rows by a transposed row-major weight
// on the skinny kernel. Row-major and column-major (transposed) operands are read in place; an
// operand dense along neither matrix dim (e.g. a strided slice) is first copied.
import { contiguousStrides, registerKernel, type Tensor } from '@blora/tensor';
import { bufferOf, layoutArg, tensorArg } from '../descriptor.js';
import { SKINNY_MAX_ROWS } from './adapter.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { withScratch } from './scratch.js';

/** True when one of the last two dims is dense (stride 1) or trivially so (size 1). */
function hasMatrixLayout(t: Tensor): boolean {
  const r = t.rank;
  const rows = t.shape[r - 2]!;
  const cols = t.shape[r - 1]!;
  return t.strides[r - 1] === 1 || cols === 1 || t.strides[r - 2] === 1 || rows === 1;
}

/** Calls `use` with a descriptor of `t`, through a contiguous scratch copy when `t` lacks a matrix layout. */
function withOperand<T>(t: Tensor, use: (arg: Float64Array) => T): T {
  if (hasMatrixLayout(t)) return use(tensorArg(t));
  return withScratch(t.dtype, t.numel, (scratch) => {
    const dense = layoutArg(scratch, 0, t.dtype, t.shape, contiguousStrides(t.shape));
    native().copy(tensorArg(t), dense);
    return use(dense);
  });
}

const SKINNY_DTYPES = new Set(['float32', 'bfloat16', 'float16']);

/**
 * A product of a few rows by a weight's transpose (a [M, K] with M <= 16 and dense rows, b = wᵀ
 * for a row-major w [N, K]; float32 as an adapter's B product while decoding, bfloat16 / float16
 * as a 16-bit model's one-token products and its lm_head) on the skinny kernel, which reads the
 * weight once at close to the memory's speed; false when the operands are not of that form.
 */
function skinnyProduct(a: Tensor, b: Tensor, out: Tensor): boolean {
  if (!SKINNY_DTYPES.has(a.dtype) || a.rank !== 2 || b.rank !== 2 || a.shape[0]! > SKINNY_MAX_ROWS) return false;
  const [m, k] = a.shape as [number, number];
  const n = b.shape[1]!;
  if (b.strides[0] !== 1 || (a.strides[1] !== 1 && k > 1)) return false;
  const w = layoutArg(bufferOf(b).address, b.offset, b.dtype, [n, k], [b.strides[1]!, 1]);
  const x = layoutArg(bufferOf(a).address, a.offset, a.dtype, [m, k], [a.strides[0]!, 1]);
  return native().skinnyLinear(x, w, tensorArg(out), 1);
}

/** Registers matmul for 'cuda'. */
export function registerMatmulKernels(): void {
  registerKernel('matmul', 'cuda', ([a, b], [out]) => {
    runKernel('matmul', [a!, b!, out!], () => {
      if (a!.numel === 0 || b!.numel === 0) {
        // K = 0 gives zeros; M = 0 or N = 0 leaves nothing to write.
        if (out!.numel > 0) native().fill(tensorArg(out!), 0, 0);
        return;
      }
      if (skinnyProduct(a!, b!, out!)) return;
      withOperand(a!, (aArg) => withOperand(b!, (bArg) => native().matmul(aArg, bArg, tensorArg(out!))));
    });
  });
}

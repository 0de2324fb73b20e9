// A balanced adapter on a quantized base as one product of the base weight each way:
//
//   forward   y  = x · Wᵀ + s · repeatInterleave(z, λout),   z = C · avgPool_λin(x)
//   backward  dx = dy · W + (1/λin) · repeatInterleave(dz · C, λin),   dz = s · sumRuns_λout(dy)
//
// The small adapter products run first (poolLinear reads x once, casting and pooling it), and
// their result rides into the quantized matmul as its addend, which a device's fused GEMM adds
// in its epilogue before the one rounding to the activation dtype. So the adapter makes no pass
// of its own over the output-sized activations: the unfused composition writes the base output,
// then reads it back to add the update (and in backward writes the adapter's input gradient,
// then sums the two).
//
// C is B · A (factor form; the dx addend is dz · B · A) or M (matrix form; dz · M).
//
// Decoding (at most 16 rows on a GPU), the factor form's B product rides along too: the addend is
// then low-rank (A · pool(x) with B as its factor) and the GEMV forms its dot products in its
// epilogue, one launch fewer per adapted projection. On the CPU the composed product is faster.
import { avgPool1d, cast, matmul, mul, poolLinear, reshape, tidy, transpose, type DType, type Tensor } from '@blora/tensor';
import { noGrad, recordNode, type GradContext } from '@blora/autograd';
import type { QuantizedLinear } from '@blora/quant';

/** The adapter's side of the fused layer. */
export interface FusedAdapterParts {
  /** The factor pair [A `[rank, in/λin]`, B `[out/λout, rank]`], or [M `[out/λout, in/λin]`]. */
  params: readonly [Tensor, Tensor] | readonly [Tensor];
  lambdaIn: number;
  lambdaOut: number;
  /** The scaling s. */
  scale: number;
}

/** Rows up to which a device's decoding GEMV takes the adapter's B product as a low-rank addend. */
const LOW_RANK_ADDEND_MAX_ROWS = 16;

let lowRankDecoding = process.env.BLORA_LOW_RANK_ADDEND !== '0';

/**
 * Whether decoding products on a GPU take the adapter's B product as a low-rank addend (the
 * default; BLORA_LOW_RANK_ADDEND=0 starts it off) or form B · (A x) in a launch of its own first.
 * Returns the previous setting. For benchmarks and comparisons: both give the same result within
 * float32 rounding.
 */
export function setLowRankDecoding(on: boolean): boolean {
  const previous = lowRankDecoding;
  lowRankDecoding = on;
  return previous;
}

/** `t` as a matrix `[rows, last dim]` (batch dims folded into rows). */
function rows(t: Tensor): Tensor {
  const count = t.shape.slice(0, -1).reduce((n, d) => n * d, 1);
  return reshape(t, [count, t.shape[t.rank - 1]!]);
}

/** The mean of each run of `lambda` features of `t` in `dtype` (a cast when lambda is 1). */
function runMeans(t: Tensor, lambda: number, dtype: DType): Tensor {
  if (lambda > 1) return avgPool1d(t, lambda, { dtype });
  return t.dtype === dtype ? t : cast(t, dtype);
}

/**
 * `x · Wᵀ + Δy` for the quantized weight W and the adapter `parts` (x `[..., in]`, the result
 * `[..., out]` in x's dtype), recorded as one node whose backward gives x, A and B (or M)
 * their gradients with one transposed quantized product. The adapter must not drop out (its
 * mask would sit between the pool and A).
 */
export function fusedQuantizedAdapter(x: Tensor, weight: QuantizedLinear, parts: FusedAdapterParts): Tensor {
  const { params, lambdaIn, lambdaOut, scale } = parts;
  // h = A · pool(x) (factor form) is kept for backward: rank floats a row, cheaper than redoing the product.
  const { y, h } = noGrad(() => tidy(() => {
    const down = poolLinear(x, params[0], lambdaIn);
    const b = params[1];
    if (b && lowRankDecoding && x.device !== 'cpu' && x.numel / x.shape[x.rank - 1]! <= LOW_RANK_ADDEND_MAX_ROWS && b.dtype === down.dtype) {
      return { y: weight.matmul(x, { values: down, factor: b, lambda: lambdaOut, scale }), h: down };
    }
    const z = b ? matmul(down, transpose(b)) : down;
    return { y: weight.matmul(x, { values: z, lambda: lambdaOut, scale }), h: b ? down : null };
  }));
  const inputs = h ? [x, ...params, h] : [x, ...params];
  recordNode('fusedQuantizedAdapter', inputs, [y], (ctx) => fusedBackward(ctx, weight, parts),
    { attrs: { lambdaIn, lambdaOut, scale }, save: { outputs: [] } });
  h?.dispose();  // the tape holds its own view
  return y;
}

// z = C · pooled, y = x·Wᵀ + s · repeat(z):
//   dz = s · sumRuns(dy, λout) = f · means with f = s·λout and means = runMeans(dy);
//   dB = dzᵀ · h, dh = dz · B, dA = dhᵀ · pooled (dM = dzᵀ · pooled);
//   dx = dy · W + (1/λin) · repeat(dh · A) (or dz · M).
// dz itself is never formed: f scales the small operands instead (B or M, and dB / dM), which
// saves a pass over an output-sized float32 tensor.
function fusedBackward({ inputs, outputGrads: [dy], needsGrad }: GradContext, weight: QuantizedLinear,
  { lambdaIn, lambdaOut, scale }: FusedAdapterParts): (Tensor | null)[] {
  const [x, first, second, h] = inputs as [Tensor, Tensor, Tensor | undefined, Tensor | undefined];
  if (!dy) return inputs.map(() => null);
  const dtype = first.dtype;
  const pooled = runMeans(x, lambdaIn, dtype);
  const means = runMeans(dy, lambdaOut, dtype);
  const factor = scale * lambdaOut;
  const scaled = (t: Tensor) => (factor === 1 ? t : mul(t, factor));
  let dxTerm: Tensor;  // [..., in/λin]: the adapter's part of dx before the repeat
  const grads: (Tensor | null)[] = [null];
  if (second && h) {
    const [a, b] = [first, second];
    const dh = matmul(means, scaled(b));
    grads.push(needsGrad[1] ? matmul(transpose(rows(dh)), rows(pooled)) : null);
    grads.push(needsGrad[2] ? scaled(matmul(transpose(rows(means)), rows(h))) : null, null);
    dxTerm = matmul(dh, a);
  } else {
    grads.push(needsGrad[1] ? scaled(matmul(transpose(rows(means)), rows(pooled))) : null);
    dxTerm = matmul(means, scaled(first));
  }
  if (needsGrad[0]) grads[0] = weight.matmulTransposed(dy, { values: dxTerm, lambda: lambdaIn, scale: 1 / lambdaIn });
  return grads;
}

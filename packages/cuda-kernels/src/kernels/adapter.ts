// The fused adapter products poolLinear and repeatLinear on the cuda device:
// - poolLinear: up to 16 rows of float32 output, one kernel (skinny_linear.cu) pools, casts and
//   multiplies; otherwise one pass casts x and averages its runs into a float32 (float64) temporary
//   (adapter_maps.cu; the plain cast kernel when λ = 1), then the SGEMM multiplies it by weightᵀ read in place, into the output;
// - repeatLinear: the SGEMM h · weightᵀ into a temporary a λ-th of the output's size, then one
//   pass scales, repeats, adds the base layer's output and rounds to the output dtype, writing
//   the output once (the unfused composition scaled, repeated, cast and added in four passes).
// Non-contiguous x or base are read through dense copies.
import { getKernel, KernelTemporaries, matmulTransposedInto, registerKernel, type Attrs, type DType, type Tensor } from '@blora/tensor';
import { tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { reshapeDense, withDense } from './dense.js';

/** Rows up to which the adapters' float32 products take the one-warp-a-feature kernel (skinny_linear.cu). */
export const SKINNY_MAX_ROWS = 16;

/** Runs the cuda kernel registered for `op` (directly: an op profile counts the fused op once). */
function run(op: string, inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Attrs = {}): void {
  getKernel(op, 'cuda')(inputs, outputs, attrs);
}

/** A copy of `t` in `dtype`, freed with the other temporaries. */
function castTo(t: Tensor, dtype: DType, temps: KernelTemporaries): Tensor {
  const copy = temps.empty(t.shape, dtype);
  run('cast', [t], [copy], { dtype });
  return copy;
}

function poolLinear(x: Tensor, weight: Tensor, out: Tensor, lambda: number): void {
  if (out.numel === 0) return;
  const dtype = out.dtype;
  const k = weight.shape[1]!;
  if (k === 0) {
    run('fill', [], [out], { value: 0 });
    return;
  }
  // A few rows (decoding): one kernel that pools, casts and multiplies.
  const width = x.shape[x.rank - 1]!;
  const rows = x.numel / width;
  if (rows <= SKINNY_MAX_ROWS && dtype === 'float32') {
    const done = withDense([x], ([dense]) =>
      native().skinnyLinear(reshapeDense(dense!, [rows, width]), tensorArg(weight), reshapeDense(tensorArg(out), [rows, weight.shape[0]!]), lambda));
    if (done) return;
  }
  const temps = new KernelTemporaries('cuda');
  try {
    let pooled = x;
    if (lambda > 1) {
      pooled = temps.empty([...x.shape.slice(0, -1), k], dtype);
      run('avgPool1d', [x], [pooled], { kernel: lambda });  // casts while it pools
    } else if (x.dtype !== dtype) {
      pooled = castTo(x, dtype, temps);  // the vectorized cast kernel
    }
    matmulTransposedInto(pooled, weight, out, temps);
  } finally {
    temps.free();
  }
}

function repeatLinear(h: Tensor, weight: Tensor, base: Tensor | undefined, out: Tensor, lambda: number, scale: number): void {
  if (out.numel === 0) return;
  const temps = new KernelTemporaries('cuda');
  try {
    const dtype = h.dtype;
    const [nr, r] = weight.shape as [number, number];
    const direct = lambda === 1 && scale === 1 && !base && out.dtype === dtype;
    const product = direct ? out : temps.empty([...h.shape.slice(0, -1), nr], dtype);
    if (r === 0) run('fill', [], [product], { value: 0 });
    else matmulTransposedInto(h, weight, product, temps);
    if (direct) return;
    const bases = base ? [base.dtype === out.dtype ? base : castTo(base, out.dtype, temps)] : [];
    withDense(bases, ([dense]) => native().repeatAdd(tensorArg(product), dense ?? null, tensorArg(out), lambda, scale));
  } finally {
    temps.free();
  }
}

/** Registers poolLinear and repeatLinear for 'cuda'. */
export function registerAdapterKernels(): void {
  registerKernel('poolLinear', 'cuda', ([x, weight], [out], attrs) => {
    runKernel('poolLinear', [x!, weight!, out!], () => poolLinear(x!, weight!, out!, attrs.lambda as number));
  });
  registerKernel('repeatLinear', 'cuda', ([h, weight, base], [out], attrs) => {
    const b = attrs.hasBase ? base! : undefined;
    runKernel('repeatLinear', b ? [h!, weight!, b, out!] : [h!, weight!, out!], () =>
      repeatLinear(h!, weight!, b, out!, attrs.lambda as number, attrs.scale as number));
  });
}

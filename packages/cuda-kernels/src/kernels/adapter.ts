// The fused adapter products poolLinear and repeatLinear on the cuda device, run as a few
// launches of the device's own kernels on temporaries this file owns (outside the op observer):
// - poolLinear: the cast and the run averages of x into one float32 (float64) temporary, then
//   the SGEMM with weightᵀ read in place, straight into the output;
// - repeatLinear: the SGEMM h · (s·weight)ᵀ into a temporary a λ-th of the output's size (the
//   scale goes onto the small weight), rounded to the output dtype when that differs, then the
//   vectorized repeat kernel and one dense add of the base. The unfused composition scaled,
//   repeated and cast in float32 before the add: two fewer passes over output-sized tensors.
//   (A native kernel that repeats while it adds is the next step.)
import { getKernel, registerKernel, Tensor, type Attrs, type DType } from '@blora/tensor';
import { runKernel } from '../errors.js';

/** Runs the cuda kernel registered for `op` (directly: an op profile counts the fused op once). */
function run(op: string, inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Attrs = {}): void {
  getKernel(op, 'cuda')(inputs, outputs, attrs);
}

/** Tensors of one call, freed together at its end. */
class Temporaries {
  private readonly list: Tensor[] = [];
  add(t: Tensor): Tensor {
    this.list.push(t);
    return t;
  }
  empty(shape: readonly number[], dtype: DType): Tensor {
    return this.add(Tensor.empty(shape, dtype, 'cuda'));
  }
  free(): void {
    for (const t of this.list) t.dispose();
    this.list.length = 0;
  }
}

/** dst `[..., n]` = a `[..., k]` · weightᵀ, weight `[n, k]` read through its strides; a vector becomes `[1, k]`. */
function multiplyByTranspose(a: Tensor, weight: Tensor, dst: Tensor, temps: Temporaries): void {
  const lhs = a.rank >= 2 ? a : temps.add(Tensor.view(a, [1, a.shape[0]!], [0, a.strides[0]!], a.offset));
  const out = dst.rank >= 2 ? dst : temps.add(Tensor.view(dst, [1, dst.shape[0]!], [0, dst.strides[0]!], dst.offset));
  const [n, k] = weight.shape as [number, number];
  const batch = lhs.shape.slice(0, -2);
  const rhs = temps.add(Tensor.view(weight, [...batch, k, n], [...batch.map(() => 0), weight.strides[1]!, weight.strides[0]!], weight.offset));
  run('matmul', [lhs, rhs], [out]);
}

function poolLinear(x: Tensor, weight: Tensor, out: Tensor, lambda: number): void {
  if (out.numel === 0) return;
  const dtype = out.dtype;
  const k = weight.shape[1]!;
  if (k === 0) {
    run('fill', [], [out], { value: 0 });
    return;
  }
  const temps = new Temporaries();
  try {
    let pooled = x;
    if (pooled.dtype !== dtype) {
      const cast = temps.empty(pooled.shape, dtype);
      run('cast', [pooled], [cast], { dtype });
      pooled = cast;
    }
    if (lambda > 1) {
      const averaged = temps.empty([...pooled.shape.slice(0, -1), k], dtype);
      run('avgPool1d', [pooled], [averaged], { kernel: lambda });
      pooled = averaged;
    }
    multiplyByTranspose(pooled, weight, out, temps);
  } finally {
    temps.free();
  }
}

function repeatLinear(h: Tensor, weight: Tensor, base: Tensor | undefined, out: Tensor, lambda: number, scale: number): void {
  if (out.numel === 0) return;
  const temps = new Temporaries();
  try {
    const dtype = h.dtype;
    const [nr, r] = weight.shape as [number, number];
    let w = weight;
    if (scale !== 1 && r > 0) {
      const factor = temps.add(Tensor.fromTypedArray(dtype === 'float64' ? new Float64Array([scale]) : new Float32Array([scale]), [], dtype, 'cuda'));
      w = temps.empty(weight.shape, dtype);
      run('mul', [weight, temps.add(Tensor.view(factor, weight.shape, [0, 0], 0))], [w]);
    }
    const direct = lambda === 1 && !base && out.dtype === dtype;
    const product = direct ? out : temps.empty([...h.shape.slice(0, -1), nr], dtype);
    if (r === 0) run('fill', [], [product], { value: 0 });
    else multiplyByTranspose(h, w, product, temps);
    if (direct) return;
    let small = product;
    if (out.dtype !== dtype) {
      small = temps.empty(product.shape, out.dtype);
      run('cast', [product], [small], { dtype: out.dtype });
    }
    // Each value λ times (the vectorized repeat kernel), straight into the output when there
    // is no base; otherwise one dense add of the base.
    let repeated = small;
    if (lambda > 1) {
      repeated = base ? temps.empty(out.shape, out.dtype) : out;
      run('repeatInterleave', [small], [repeated], { repeats: lambda, axis: out.rank - 1 });
    } else if (!base) {
      run('copy', [small], [out]);
    }
    if (!base) return;
    let addend = base;
    if (base.dtype !== out.dtype) {
      addend = temps.empty(base.shape, out.dtype);
      run('cast', [base], [addend], { dtype: out.dtype });
    }
    run('add', [addend, repeated], [out]);
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

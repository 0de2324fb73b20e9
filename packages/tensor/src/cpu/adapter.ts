// CPU kernels of the fused adapter products poolLinear and repeatLinear. Both are built from
// the CPU kernels registered for cast, avgPool1d, matmul, mul, repeatInterleave and add, looked
// up when they run: when faster CPU kernels replace the TypeScript ones, these ops use them too.
// The steps run on temporaries this file owns, outside the op observer, and every temporary is
// freed before the kernel returns. When repeatLinear's output or base has another dtype than
// its product, it finishes with one loop that scales, repeats, adds and rounds in a single pass.
import { getKernel, registerKernel, type Attrs } from '../dispatch.js';
import { KernelTemporaries, matmulTransposedInto } from '../kernel-temporaries.js';
import { Tensor } from '../tensor.js';
import { commitValues, outputValues, readValues, storageOf } from './access.js';

/**
 * Runs the CPU kernel currently registered for `op` on tensors this file owns. Called directly
 * rather than through `runKernel`, so that an op profile counts the time once, under the fused op.
 */
function runCpu(op: string, inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Attrs = {}): void {
  getKernel(op, 'cpu')(inputs, outputs, attrs);
}

/** Writes zeros into the dense float tensor `t`. */
function fillZero(t: Tensor): void {
  storageOf(t).fill(0, t.offset, t.offset + t.numel);
}

// poolLinear: cast x to the weight's dtype (when it differs), average each run of λ features,
// multiply by weightᵀ straight into the output.
registerKernel('poolLinear', 'cpu', ([x, weight], [out], { lambda }) => {
  const lam = lambda as number;
  const dtype = out!.dtype;
  if (out!.numel === 0) return;
  const k = weight!.shape[1]!;
  if (k === 0) {
    fillZero(out!);
    return;
  }
  const temps = new KernelTemporaries('cpu');
  try {
    let pooled = x!;
    if (pooled.dtype !== dtype) {
      const cast = temps.empty(pooled.shape, dtype);
      runCpu('cast', [pooled], [cast], { dtype });
      pooled = cast;
    }
    if (lam > 1) {
      const averaged = temps.empty([...pooled.shape.slice(0, -1), k], dtype);
      runCpu('avgPool1d', [pooled], [averaged], { kernel: lam });
      pooled = averaged;
    }
    matmulTransposedInto(pooled, weight!, out!, temps);
  } finally {
    temps.free();
  }
});

/**
 * out = base + s · repeatInterleave(product) through the registered kernels, for an output and
 * base of the product's dtype: mul (on the small product), repeatInterleave and add, each of
 * which a faster CPU kernel may replace.
 */
function finishWithKernels(product: Tensor, out: Tensor, base: Tensor | undefined, lambda: number, scale: number, temps: KernelTemporaries): void {
  let result = product;
  if (scale !== 1) {
    const value = product.dtype === 'float64' ? new Float64Array([scale]) : new Float32Array([scale]);
    const factor = temps.add(Tensor.fromTypedArray(value, [], product.dtype, 'cpu'));
    const broadcast = temps.add(Tensor.view(factor, product.shape, product.shape.map(() => 0), 0));
    const scaled = lambda === 1 && !base ? out : temps.empty(product.shape, product.dtype);
    runCpu('mul', [product, broadcast], [scaled]);
    result = scaled;
  }
  if (lambda > 1) {
    const repeated = base ? temps.empty(out.shape, out.dtype) : out;
    runCpu('repeatInterleave', [result], [repeated], { repeats: lambda, axis: out.rank - 1 });
    result = repeated;
  }
  // Without a base the last step above already wrote into `out` (the caller multiplies straight
  // into it when there is neither a scale nor a repeat).
  if (base) runCpu('add', [base, result], [out]);
}

/**
 * out = base + s · repeatInterleave(product) in one pass for any output and base dtypes: the
 * sums are formed in JS numbers and rounded once, when stored in the output's array.
 */
function finishInOnePass(product: Tensor, out: Tensor, base: Tensor | undefined, lambda: number, scale: number): void {
  const values = storageOf(product) as Float32Array | Float64Array;
  const add = base ? readValues(base) : null;
  const dst = outputValues(out);
  let p = 0;
  if (add) {
    for (let i = 0; i < values.length; i++) {
      const v = scale * values[i]!;
      for (let e = 0; e < lambda; e++, p++) dst[p] = add[p]! + v;
    }
  } else {
    for (let i = 0; i < values.length; i++) {
      const v = scale * values[i]!;
      for (let e = 0; e < lambda; e++) dst[p++] = v;
    }
  }
  commitValues(out, dst);
}

// repeatLinear: the small product h · weightᵀ into a temporary of h's dtype (or straight into
// the output when nothing else is to be done), then scale, repeat and add the base. When the
// output and base have h's dtype this runs the registered kernels (native ones where loaded);
// otherwise one pass converts while it adds, which saves the casts.
registerKernel('repeatLinear', 'cpu', ([h, weight, base], [out], { lambda, scale, hasBase }) => {
  if (out!.numel === 0) return;
  const lam = lambda as number;
  const s = scale as number;
  const b = hasBase ? base! : undefined;
  const dtype = h!.dtype;
  const temps = new KernelTemporaries('cpu');
  try {
    const [nr, r] = weight!.shape as [number, number];
    const direct = lam === 1 && s === 1 && !b && out!.dtype === dtype;
    const product = direct ? out! : temps.empty([...h!.shape.slice(0, -1), nr], dtype);
    if (r === 0) fillZero(product);
    else matmulTransposedInto(h!, weight!, product, temps);
    if (direct) return;
    if (out!.dtype === dtype && (!b || b.dtype === dtype)) finishWithKernels(product, out!, b, lam, s, temps);
    else finishInOnePass(product, out!, b, lam, s);
  } finally {
    temps.free();
  }
});

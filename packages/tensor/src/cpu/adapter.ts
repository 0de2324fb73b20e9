// CPU kernels of the fused adapter products poolLinear and repeatLinear. Both are built from
// the CPU kernels registered for cast, avgPool1d, matmul, mul, repeatInterleave and add, looked
// up when they run: when faster CPU kernels replace the TypeScript ones, these ops use them too.
// The steps run on temporaries this file owns, outside the op observer, and every temporary is
// freed before the kernel returns. When repeatLinear's output or base has another dtype than
// its product, it finishes with one loop that scales, repeats, adds and rounds in a single pass.
import { getKernel, registerKernel, type Attrs } from '../dispatch.js';
import { Tensor } from '../tensor.js';
import { commitValues, outputValues, readValues, storageOf } from './access.js';

/**
 * Runs the CPU kernel currently registered for `op` on tensors this file owns. Called directly
 * rather than through `runKernel`, so that an op profile counts the time once, under the fused op.
 */
function runCpu(op: string, inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Attrs = {}): void {
  getKernel(op, 'cpu')(inputs, outputs, attrs);
}

/** Temporaries of one kernel call, freed together at the end. */
class Temporaries {
  private readonly list: Tensor[] = [];

  /** Registers `t` for freeing and returns it. */
  add(t: Tensor): Tensor {
    this.list.push(t);
    return t;
  }

  /** Frees every registered tensor. */
  free(): void {
    for (const t of this.list) t.dispose();
    this.list.length = 0;
  }
}

/** `t` `[..., c]` as an operand of rank >= 2 for the matmul kernel: itself, or a `[1, c]` view of a vector. */
function asMatrix(t: Tensor, temps: Temporaries): Tensor {
  if (t.rank >= 2) return t;
  return temps.add(Tensor.view(t, [1, t.shape[0]!], [0, t.strides[0]!], t.offset));
}

/**
 * dst `[..., n]` = a `[..., k]` · weightᵀ for weight `[n, k]` (read through its strides). `dst`
 * is contiguous. The matmul kernel gets weightᵀ as a view broadcast over a's batch dims, so
 * a batch whose dims fold into rows becomes one tall product.
 */
function multiplyByTranspose(a: Tensor, weight: Tensor, dst: Tensor, temps: Temporaries): void {
  const lhs = asMatrix(a, temps);
  const out = asMatrix(dst, temps);
  const [n, k] = weight.shape as [number, number];
  const batch = lhs.shape.slice(0, -2);
  const rhs = temps.add(Tensor.view(weight, [...batch, k, n], [...batch.map(() => 0), weight.strides[1]!, weight.strides[0]!], weight.offset));
  runCpu('matmul', [lhs, rhs], [out]);
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
  const temps = new Temporaries();
  try {
    let pooled = x!;
    if (pooled.dtype !== dtype) {
      const cast = temps.add(Tensor.empty(pooled.shape, dtype, 'cpu'));
      runCpu('cast', [pooled], [cast], { dtype });
      pooled = cast;
    }
    if (lam > 1) {
      const averaged = temps.add(Tensor.empty([...pooled.shape.slice(0, -1), k], dtype, 'cpu'));
      runCpu('avgPool1d', [pooled], [averaged], { kernel: lam });
      pooled = averaged;
    }
    multiplyByTranspose(pooled, weight!, out!, temps);
  } finally {
    temps.free();
  }
});

/**
 * out = base + s · repeatInterleave(product) through the registered kernels, for an output and
 * base of the product's dtype: mul (on the small product), repeatInterleave and add, each of
 * which a faster CPU kernel may replace.
 */
function finishWithKernels(product: Tensor, out: Tensor, base: Tensor | undefined, lambda: number, scale: number, temps: Temporaries): void {
  let result = product;
  if (scale !== 1) {
    const value = product.dtype === 'float64' ? new Float64Array([scale]) : new Float32Array([scale]);
    const factor = temps.add(Tensor.fromTypedArray(value, [], product.dtype, 'cpu'));
    const broadcast = temps.add(Tensor.view(factor, product.shape, product.shape.map(() => 0), 0));
    const scaled = lambda === 1 && !base ? out : temps.add(Tensor.empty(product.shape, product.dtype, 'cpu'));
    runCpu('mul', [product, broadcast], [scaled]);
    result = scaled;
  }
  if (lambda > 1) {
    const repeated = base ? temps.add(Tensor.empty(out.shape, out.dtype, 'cpu')) : out;
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
  const temps = new Temporaries();
  try {
    const [nr, r] = weight!.shape as [number, number];
    const direct = lam === 1 && s === 1 && !b && out!.dtype === dtype;
    const product = direct ? out! : temps.add(Tensor.empty([...h!.shape.slice(0, -1), nr], dtype, 'cpu'));
    if (r === 0) fillZero(product);
    else multiplyByTranspose(h!, weight!, product, temps);
    if (direct) return;
    if (out!.dtype === dtype && (!b || b.dtype === dtype)) finishWithKernels(product, out!, b, lam, s, temps);
    else finishInOnePass(product, out!, b, lam, s);
  } finally {
    temps.free();
  }
});

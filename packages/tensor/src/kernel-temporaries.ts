// What kernels built from other kernels share: the tensors one call allocates, and the product
// with a transposed weight through the device's registered matmul kernel. The steps run
// outside the op observer (nothing reaches an autograd tape), and an op profile counts the
// time once, under the op that called them.
import { getKernel } from './dispatch.js';
import type { DType } from './dtype.js';
import { Tensor } from './tensor.js';

/** The tensors one kernel call allocates on `device`, freed together by `free()`. */
export class KernelTemporaries {
  private readonly list: Tensor[] = [];

  /** @param device The device new temporaries live on. */
  constructor(readonly device: string) {}

  /** Registers `t` (a view or a tensor) for freeing and returns it. */
  add(t: Tensor): Tensor {
    this.list.push(t);
    return t;
  }

  /** A new uninitialized tensor on the device, freed with the others. */
  empty(shape: readonly number[], dtype: DType): Tensor {
    return this.add(Tensor.empty(shape, dtype, this.device));
  }

  /** Frees every registered tensor. */
  free(): void {
    for (const t of this.list) t.dispose();
    this.list.length = 0;
  }
}

/**
 * dst `[..., n]` = a `[..., k]` · weightᵀ for weight `[n, k]` (read through its strides) by the
 * matmul kernel registered for `temps.device`; `dst` is contiguous. The kernel gets weightᵀ as
 * a view broadcast over a's batch dims, so a batch whose dims fold into rows is one tall
 * product; a vector is taken as one row.
 */
export function matmulTransposedInto(a: Tensor, weight: Tensor, dst: Tensor, temps: KernelTemporaries): void {
  const asMatrix = (t: Tensor): Tensor => (t.rank >= 2 ? t : temps.add(Tensor.view(t, [1, t.shape[0]!], [0, t.strides[0]!], t.offset)));
  const lhs = asMatrix(a);
  const out = asMatrix(dst);
  const [n, k] = weight.shape as [number, number];
  const batch = lhs.shape.slice(0, -2);
  const rhs = temps.add(Tensor.view(weight, [...batch, k, n], [...batch.map(() => 0), weight.strides[1]!, weight.strides[0]!], weight.offset));
  getKernel('matmul', temps.device)([lhs, rhs], [out], {});
}

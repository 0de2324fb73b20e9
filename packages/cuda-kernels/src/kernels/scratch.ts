// Temporary device memory for kernels that stage data (permuted copies, casts). A scratch
// block may be released right after the launches that use it are queued: every launch
// runs on one stream, so the block's next user is ordered after them.
import { itemSize, type DType } from '@blora/tensor';
import { native } from '../native.js';

/** Allocates room for `numel` elements of `dtype`, runs `use(address)`, then frees it. */
export function withScratch<T>(dtype: DType, numel: number, use: (address: number) => T): T {
  const bytes = numel * itemSize(dtype);
  const address = bytes > 0 ? native().malloc(bytes) : 0;
  try {
    return use(address);
  } finally {
    if (address !== 0) native().free(address);
  }
}

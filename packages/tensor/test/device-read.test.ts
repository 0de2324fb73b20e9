// Reading views back from a device that is not the CPU: the backend copies whole
// allocations, so offsets and strides must be resolved on the device first.
import { describe, expect, it } from 'vitest';
import { arange, cpuBackend, findKernel, narrow, registerBackend, registerKernel, reshape, transpose } from '../src/index.js';

// A second host-memory device with its own name, so tensors on it take the non-CPU read path.
registerBackend({ ...cpuBackend, name: 'hostcopy' });
registerKernel('copy', 'hostcopy', findKernel('copy', 'cpu')!);
registerKernel('fill', 'hostcopy', findKernel('fill', 'cpu')!);

describe('reading views from a non-CPU device', () => {
  const base = reshape(arange(24).to('hostcopy'), [6, 4]);

  it('reads a contiguous view at a non-zero offset', () => {
    expect(narrow(base, 0, 4, 1).toArray()).toEqual([[16, 17, 18, 19]]);
    expect(narrow(base, 0, 2, 3).toFloat64Array()).toEqual(Float64Array.from([8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]));
  });

  it('reads strided views and single elements', () => {
    expect(transpose(narrow(base, 1, 1, 2)).toArray()).toEqual([[1, 5, 9, 13, 17, 21], [2, 6, 10, 14, 18, 22]]);
    expect(narrow(narrow(base, 0, 5, 1), 1, 3, 1).item()).toBe(23);
  });
});

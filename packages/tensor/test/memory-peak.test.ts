// peakBytes / resetPeakMemory: the highest live bytes of a device since the last reset,
// counted at every allocation (so a temporary that lives for one op counts).
import { describe, expect, it } from 'vitest';
import { add, dispose, memoryStats, mul, peakBytes, reshape, resetPeakMemory, slice, tidy, transpose, zeros } from '@blora/tensor';

describe('peakBytes and resetPeakMemory', () => {
  it('after a reset the peak is the bytes held now, and it follows every allocation', () => {
    const held = zeros([10]); // 40 bytes kept through the test
    resetPeakMemory();
    const base = memoryStats().bytes;
    expect(peakBytes()).toBe(base);
    const a = zeros([100]); // +400
    expect(peakBytes()).toBe(base + 400);
    const b = zeros([25], { dtype: 'float64' }); // +200
    expect(peakBytes()).toBe(base + 600);
    a.dispose();
    b.dispose();
    // Freeing lowers the live bytes, not the peak.
    expect(memoryStats().bytes).toBe(base);
    expect(peakBytes()).toBe(base + 600);
    const c = zeros([50]); // +200, below the peak
    expect(peakBytes()).toBe(base + 600);
    c.dispose();
    held.dispose();
  });

  it('counts temporaries that a tidy scope frees before returning', () => {
    resetPeakMemory();
    const base = memoryStats().bytes;
    // a, b (256 bytes each), a + b and (a + b) * b live together until the scope ends.
    const out = tidy(() => {
      const b = zeros([64]);
      return mul(add(zeros([64]), b), b);
    });
    expect(memoryStats().bytes).toBe(base + 256);
    expect(peakBytes()).toBe(base + 4 * 256);
    out.dispose();
  });

  it('views add nothing; a storage counts once however many tensors share it', () => {
    resetPeakMemory();
    const base = memoryStats().bytes;
    const t = zeros([4, 8], { dtype: 'bfloat16' }); // 64 bytes
    const views = [reshape(t, [32]), transpose(t, 0, 1), slice(t, 0, 1, 3)];
    expect(peakBytes()).toBe(base + 64);
    dispose([t, ...views]);
    expect(memoryStats().bytes).toBe(base);
  });

  it('resetPeakMemory returns the peak it ends, and measures phases one after another', () => {
    resetPeakMemory();
    const base = memoryStats().bytes;
    const big = zeros([1000]);
    big.dispose();
    expect(resetPeakMemory()).toBe(base + 4000);
    const small = zeros([10]);
    small.dispose();
    expect(resetPeakMemory()).toBe(base + 40);
    expect(peakBytes()).toBe(base);
  });

  it('keeps one peak per device; a device never used has a peak of 0', () => {
    expect(peakBytes('no-such-device')).toBe(0);
    expect(resetPeakMemory('no-such-device')).toBe(0);
    resetPeakMemory('cpu');
    const before = peakBytes('cpu');
    const t = zeros([8]);
    expect(peakBytes('cpu')).toBe(before + 32);
    expect(peakBytes('no-such-device')).toBe(0);
    t.dispose();
  });
});

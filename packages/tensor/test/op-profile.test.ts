import { afterEach, describe, expect, it } from 'vitest';
import {
  add, formatOpProfile, getBackend, matmul, mul, profileOps, startOpProfile, stopOpProfile, sum, tensor, tidy,
} from '../src/index.js';

/** Counts the CPU backend's synchronize calls while `fn` runs. */
function countSyncs<T>(fn: () => T): { result: T; syncs: number } {
  const backend = getBackend('cpu');
  const original = backend.synchronize;
  let syncs = 0;
  (backend as { synchronize: () => void }).synchronize = () => { syncs += 1; original.call(backend); };
  try {
    return { result: fn(), syncs };
  } finally {
    (backend as { synchronize: () => void }).synchronize = original;
  }
}

describe('op profile', () => {
  afterEach(() => {
    // A failed test must not leave a profile open for the next one.
    try { stopOpProfile(); } catch { /* none open */ }
  });

  it('counts every dispatched op by name, synchronizing after each, and sorts by time', () => {
    const { result: profile, syncs } = countSyncs(() => profileOps('cpu', () => tidy(() => {
      const a = tensor([[1, 2], [3, 4]]);
      const b = tensor([[5, 6], [7, 8]]);
      let c = matmul(a, b);
      for (let i = 0; i < 3; i++) c = add(c, a);
      return sum(mul(c, b)).item();
    })));
    // [[19,22],[43,50]] + 3a = [[22,28],[52,62]]; times b summed: 110 + 168 + 364 + 496
    expect(profile.result).toBe(1138);
    const calls = Object.fromEntries(profile.profile.entries.map((e) => [e.op, e.calls]));
    expect(calls).toMatchObject({ matmul: 1, add: 3, mul: 1, sum: 1 });
    const dispatched = profile.profile.entries.reduce((s, e) => s + e.calls, 0);
    // one synchronize per dispatched op, plus one at the start and one at the stop
    expect(syncs).toBe(dispatched + 2);
    const ms = profile.profile.entries.map((e) => e.ms);
    expect(ms.every((v) => v >= 0)).toBe(true);
    expect([...ms].sort((x, y) => y - x)).toEqual(ms);
    expect(profile.profile.opMs).toBeCloseTo(ms.reduce((s, v) => s + v, 0), 9);
    expect(profile.profile.wallMs).toBeGreaterThanOrEqual(profile.profile.opMs);
    expect(profile.profile.device).toBe('cpu');
  });

  it('adds no synchronize when no profile is open', () => {
    const { syncs } = countSyncs(() => tidy(() => add(tensor([1]), tensor([2])).item()));
    expect(syncs).toBe(0);
  });

  it('refuses a second open profile, a stop without a start and an unknown device', () => {
    startOpProfile('cpu');
    expect(() => startOpProfile('cpu')).toThrow(/a profile of 'cpu' is already open/);
    stopOpProfile();
    expect(() => stopOpProfile()).toThrow(/no profile is open/);
    expect(() => startOpProfile('nowhere')).toThrow(/device 'nowhere' is not registered/);
  });

  it('closes the profile when the profiled work throws', () => {
    expect(() => profileOps('cpu', () => { throw new Error('boom'); })).toThrow('boom');
    expect(() => stopOpProfile()).toThrow(/no profile is open/);
  });

  it('formats a table with shares and the op/wall totals', () => {
    const { profile } = profileOps('cpu', () => tidy(() => add(tensor([1, 2]), tensor([3, 4])).toArray()));
    const text = formatOpProfile(profile);
    expect(text).toMatch(/^op\s+calls\s+ms\s+share/);
    expect(text).toMatch(/\nadd\s+1\s+\d+\.\d{3}\s+100\.0%/);
    expect(text).toMatch(/ops \d+\.\d{3} ms of \d+\.\d{3} ms wall on cpu$/);
  });
});

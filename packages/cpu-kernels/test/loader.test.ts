// Importing the package: which kernels end up registered, what cpuKernelsInfo reports, and
// that every way of not having the addon leaves the TypeScript kernels in place silently.
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { KernelFn } from '@blora/tensor';
import { loadAddon, settingsFromEnv } from '../src/native.js';
import { NATIVE } from './helpers.js';

const OPS = [
  'matmul', 'add', 'sub', 'mul', 'div', 'sigmoid', 'silu', 'siluBackward', 'siluMul', 'softmax', 'logSoftmax', 'avgPool1d', 'repeatInterleave',
  'nf4Matmul', 'nf4MatmulT', 'int4Matmul', 'int4MatmulT', 'int8Matmul', 'int8MatmulT', 'attention', 'attentionBackward',
  'rmsNorm', 'rmsNormBackward', 'crossEntropy', 'crossEntropyBackward', 'adamwStep', 'copy', 'rope', 'sum', 'mean',
];
const WRAPPED = Symbol.for('@blora/cpu-kernels/wrapped');
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Imports fresh copies of @blora/tensor and this package with `env` set; records the kernels before and after and anything printed. */
async function freshImport(env: Record<string, string | undefined>) {
  vi.resetModules();
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  const tensor = await import('@blora/tensor');
  await import('@blora/quant'); // registers the TypeScript kernels of the quantized-weight ops
  const before = new Map(OPS.map((op) => [op, tensor.findKernel(op, 'cpu')]));
  const printers = [
    vi.spyOn(console, 'log'), vi.spyOn(console, 'warn'), vi.spyOn(console, 'error'), vi.spyOn(console, 'info'),
    vi.spyOn(process.stdout, 'write'), vi.spyOn(process.stderr, 'write'),
  ];
  const pkg = await import('../src/index.js');
  const printed = printers.reduce((n, spy) => n + spy.mock.calls.length, 0);
  for (const spy of printers) spy.mockRestore();
  const after = new Map(OPS.map((op) => [op, tensor.findKernel(op, 'cpu')]));
  return { tensor, pkg, before, after, printed };
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('without the addon', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['the addon file is missing', { BLORA_CPU_KERNELS_ADDON: join(tmpdir(), 'no-such-dir', 'blora_cpu.node') }, /native addon not built \(no .*no-such-dir.*\)/],
    ['the native kernels are switched off', { BLORA_CPU_KERNELS: 'off' }, /disabled by BLORA_CPU_KERNELS=off/],
    ['the addon is a stale build', { BLORA_CPU_KERNELS_ADDON: fixture('stale-addon.cjs') }, /stale build \(interface 0, expected 4\)/],
    ['the addon fails to load', { BLORA_CPU_KERNELS_ADDON: fixture('broken-addon.cjs') }, /failed to load: cannot open shared object file/],
    ['BLORA_CPU_THREADS is invalid', { BLORA_CPU_THREADS: 'many' }, /BLORA_CPU_THREADS=many is not a positive integer/],
    ['BLORA_CPU_ISA is invalid', { BLORA_CPU_ISA: 'sse' }, /BLORA_CPU_ISA=sse is not one of auto, avx512, avx2, scalar/],
    ['BLORA_CPU_QUANT_ACTIVATIONS is invalid', { BLORA_CPU_QUANT_ACTIVATIONS: 'int4' }, /BLORA_CPU_QUANT_ACTIVATIONS=int4 is not one of float32, int8/],
    ['BLORA_CPU_BUFFER_POOL_MIB is invalid', { BLORA_CPU_BUFFER_POOL_MIB: '-1' }, /BLORA_CPU_BUFFER_POOL_MIB=-1 is not a non-negative number/],
  ];

  it.each(cases)('when %s: imports silently, registers nothing and says why', async (_what, env, reason) => {
    const { pkg, before, after, printed, tensor } = await freshImport(env);
    const info = pkg.cpuKernelsInfo();
    expect(info.native).toBe(false);
    expect(!info.native && info.reason).toMatch(reason);
    expect(printed).toBe(0);
    for (const op of OPS) expect(after.get(op)).toBe(before.get(op));
    expect(pkg.configureCpuKernels({ threads: 1 })).toEqual(info);
    // The TypeScript kernels still compute.
    const y = tensor.matmul(tensor.tensor([[1, 2]]), tensor.tensor([[3], [4]]));
    expect(y.toArray()).toEqual([[11]]);
  });
});

describe('configureCpuKernels', () => {
  it('rejects invalid options by name', async () => {
    const { pkg } = await freshImport({});
    expect(() => pkg.configureCpuKernels({ isa: 'sse' as 'auto' })).toThrow(/configureCpuKernels: isa must be one of 'auto', 'avx512', 'avx2', 'scalar', got sse/);
    expect(() => pkg.configureCpuKernels({ bufferPoolMiB: -1 })).toThrow(/configureCpuKernels: bufferPoolMiB must be a non-negative number, got -1/);
    expect(() => pkg.configureCpuKernels({ threads: -1 })).toThrow(/configureCpuKernels: threads must be a non-negative integer, got -1/);
    expect(() => pkg.configureCpuKernels({ threads: 1.5 })).toThrow(RangeError);
  });
});

describe('settingsFromEnv', () => {
  it('parses the defaults, valid values and invalid ones', () => {
    const defaults = { isa: 'auto', threads: 0, quantActivations: 'float32', bufferPoolMiB: 1024 };
    expect(settingsFromEnv({})).toEqual(defaults);
    expect(settingsFromEnv({ BLORA_CPU_ISA: 'scalar', BLORA_CPU_THREADS: '3' })).toEqual({ ...defaults, isa: 'scalar', threads: 3 });
    expect(settingsFromEnv({ BLORA_CPU_ISA: 'avx512', BLORA_CPU_THREADS: '' })).toEqual({ ...defaults, isa: 'avx512' });
    expect(settingsFromEnv({ BLORA_CPU_QUANT_ACTIVATIONS: 'int8', BLORA_CPU_BUFFER_POOL_MIB: '0' })).toEqual({ ...defaults, quantActivations: 'int8', bufferPoolMiB: 0 });
    expect(settingsFromEnv({ BLORA_CPU_THREADS: '-2' })).toMatch(/not a positive integer/);
    expect(settingsFromEnv({ BLORA_CPU_THREADS: '1.5' })).toMatch(/not a positive integer/);
  });
});

describe.skipIf(!NATIVE)('with the addon', () => {
  it('reports the instruction set and threads, and wraps every TypeScript kernel it replaces', async () => {
    const { pkg, before, after, printed } = await freshImport({ BLORA_CPU_ISA: undefined, BLORA_CPU_THREADS: undefined });
    const info = pkg.cpuKernelsInfo();
    if (!info.native) throw new Error(info.reason);
    // 'auto' picks the widest instruction set the CPU supports.
    expect(info.isa).toBe(info.supported[0]);
    expect(info.supported.at(-1)).toBe('scalar');
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect([...info.ops]).toEqual([...OPS].sort());
    expect(printed).toBe(0);
    for (const op of OPS) {
      const kernel = after.get(op) as KernelFn & { [WRAPPED]?: KernelFn };
      expect(kernel).not.toBe(before.get(op));
      expect(kernel[WRAPPED]).toBe(before.get(op));
    }
  });

  it('takes the instruction set and thread count from the environment and from configureCpuKernels', async () => {
    const { pkg } = await freshImport({ BLORA_CPU_ISA: 'scalar', BLORA_CPU_THREADS: '1' });
    expect(pkg.cpuKernelsInfo()).toMatchObject({ native: true, isa: 'scalar', threads: 1 });
    expect(pkg.configureCpuKernels({ threads: 3 })).toMatchObject({ isa: 'scalar', threads: 3 });
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    if (result.addon.info().avx2Supported) {
      expect(pkg.configureCpuKernels({ isa: 'avx2' })).toMatchObject({ isa: 'avx2+fma' });
    } else {
      expect(() => pkg.configureCpuKernels({ isa: 'avx2' })).toThrow(/lacks AVX2/);
    }
    if (result.addon.info().avx512Supported) {
      expect(pkg.configureCpuKernels({ isa: 'avx512' })).toMatchObject({ isa: 'avx512' });
      // Leaving isa out keeps the instruction set in use.
      expect(pkg.configureCpuKernels({ threads: 2 })).toMatchObject({ isa: 'avx512', threads: 2 });
    } else {
      expect(() => pkg.configureCpuKernels({ isa: 'avx512' })).toThrow(/lacks AVX-512/);
    }
    if (result.addon.info().avx2Supported) {
      const { pkg: avx2 } = await freshImport({ BLORA_CPU_ISA: 'avx2', BLORA_CPU_THREADS: undefined });
      expect(avx2.cpuKernelsInfo()).toMatchObject({ native: true, isa: 'avx2+fma' });
    }
    const auto = pkg.configureCpuKernels({ isa: 'auto', threads: 0 });
    expect(auto.native && auto.threads).toBeGreaterThanOrEqual(1);
  });

  it('wraps the quantized-weight kernels when the package is imported before @blora/quant', async () => {
    vi.resetModules();
    const tensor = await import('@blora/tensor');
    await import('../src/index.js');
    const quant = await import('@blora/quant');
    const kernel = tensor.findKernel('nf4Matmul', 'cpu') as KernelFn & { [WRAPPED]?: KernelFn };
    expect(kernel[WRAPPED]).toBeTypeOf('function');
    expect(quant.QUANT_OPS.nf4Matmul).toBe('nf4Matmul');
  });

  it('a second copy of the package wraps the original TypeScript kernel, not the first copy', async () => {
    const { tensor, before, after } = await freshImport({});
    const secondCopy = '../src/index.js?second-copy';
    await import(/* @vite-ignore */ secondCopy);
    const kernel = tensor.findKernel('matmul', 'cpu') as KernelFn & { [WRAPPED]?: KernelFn };
    expect(kernel).not.toBe(after.get('matmul'));
    expect(kernel[WRAPPED]).toBe(before.get('matmul'));
    const y = tensor.matmul(tensor.tensor([[1, 2]], { dtype: 'float64' }), tensor.tensor([[3], [4]], { dtype: 'float64' }));
    expect(y.toArray()).toEqual([[11]]);
  });
});

// Runs everywhere, GPU or not: importing the package never throws, and without a usable GPU
// nothing is registered and every entry point explains why.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend, listDevices, listKernels } from '@blora/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaAvailable, cudaDeviceInfo, cudaMemoryInfo, cudaUnavailableReason, emptyCache, synchronize } from '../src/index.js';
import { defaultAddonPath, loadAddon } from '../src/native.js';
import { buildNative, findCuda, SKIP_DISABLED, SKIP_NO_NVCC } from '../scripts/cuda.mjs';

const packageRoot = fileURLToPath(new URL('..', import.meta.url));
// An NVIDIA driver exposes these device nodes; without them no GPU can be usable.
const hasNvidiaDriver = existsSync('/dev/nvidiactl') || existsSync('/dev/nvidia0');
const scratchDir = mkdtempSync(join(tmpdir(), 'cuda-kernels-load-'));
afterAll(() => rmSync(scratchDir, { recursive: true, force: true }));

describe('loading the package', () => {
  it('imports without throwing and reports a reason exactly when cuda is unavailable', async () => {
    await expect(import('../src/index.js')).resolves.toBeDefined();
    expect(typeof cudaAvailable()).toBe('boolean');
    expect(cudaUnavailableReason() === '').toBe(cudaAvailable());
  });

  it.skipIf(hasNvidiaDriver)('without a GPU: cudaAvailable() is false with a reason and nothing is registered', () => {
    expect(cudaAvailable()).toBe(false);
    expect(cudaUnavailableReason()).toMatch(/\w/);
    expect(listDevices()).not.toContain('cuda');
    expect(listKernels('cuda')).toEqual([]);
    expect(() => getBackend('cuda')).toThrow(/device 'cuda' is not registered.*@blora\/cuda-kernels/);
  });

  it.skipIf(hasNvidiaDriver)('without a GPU: memory info throws with the reason; emptyCache and synchronize do nothing', () => {
    expect(() => cudaMemoryInfo()).toThrow(/cudaMemoryInfo: cuda is not available: .+/);
    expect(() => emptyCache()).not.toThrow();
    expect(() => synchronize()).not.toThrow();
  });

  it.runIf(existsSync(defaultAddonPath) && !hasNvidiaDriver)('the built addon loads and says why no GPU can be used', () => {
    const result = loadAddon();
    expect(result.addon).toBeNull();
    expect(result.device).not.toBeNull();
    expect(result.device!.available).toBe(false);
    expect(result.device!.runtimeVersion).toBeGreaterThan(0);
    expect(result.reason).toBe(result.device!.reason);
    expect(result.reason).toMatch(/driver|device/i);
    // The runtime's error-name lookup needs the driver; the reason must not quote a bogus success.
    expect(result.reason).not.toMatch(/cudaSuccess|no error/);
    expect(cudaDeviceInfo()).toEqual(result.device);
  });

  it('a missing addon file gives a reason naming the file', () => {
    const missing = join(scratchDir, 'absent.node');
    const result = loadAddon(missing);
    expect(result.addon).toBeNull();
    expect(result.device).toBeNull();
    expect(result.reason).toContain('not built');
    expect(result.reason).toContain(missing);
  });

  it('an addon file that cannot be loaded gives a reason instead of a crash', () => {
    const broken = join(scratchDir, 'broken.node');
    writeFileSync(broken, 'not a shared library');
    const result = loadAddon(broken);
    expect(result.addon).toBeNull();
    expect(result.reason).toMatch(/failed to load/);
  });
});

describe('the native build script', () => {
  it('without a CUDA toolkit it logs one line, succeeds and runs no compiler', () => {
    const lines: string[] = [];
    let spawned = false;
    const code = buildNative({
      env: { PATH: '' },
      fallbackRoots: [],
      log: (line) => lines.push(line),
      spawn: (() => {
        spawned = true;
        throw new Error('must not run');
      }) as never,
    });
    expect(code).toBe(0);
    expect(lines).toEqual([SKIP_NO_NVCC]);
    expect(SKIP_NO_NVCC).toBe('@blora/cuda-kernels: nvcc not found, skipping the CUDA build');
    expect(spawned).toBe(false);
  });

  it('BLORA_CUDA=off skips the build from the command line with one line and exit code 0', () => {
    const result = spawnSync(process.execPath, ['scripts/build-native.mjs'], {
      cwd: packageRoot,
      env: { ...process.env, BLORA_CUDA: 'off' },
      encoding: 'utf8',
    });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${SKIP_DISABLED}\n`);
    expect(result.stderr).toBe('');
  });

  it('finds a toolkit through CUDA_HOME first, and only a complete one', () => {
    const fake = join(scratchDir, 'toolkit');
    mkdirSync(join(fake, 'bin'), { recursive: true });
    writeFileSync(join(fake, 'bin', 'nvcc'), '');
    expect(findCuda({ env: { CUDA_HOME: fake, PATH: '' }, fallbackRoots: [] })).toBeNull(); // no headers yet
    mkdirSync(join(fake, 'include'));
    writeFileSync(join(fake, 'include', 'cuda_runtime.h'), '');
    expect(findCuda({ env: { CUDA_HOME: fake, PATH: '' }, fallbackRoots: [] })).toEqual({ root: fake, nvcc: join(fake, 'bin', 'nvcc') });
    expect(findCuda({ env: { PATH: '' }, fallbackRoots: ['/nonexistent', fake] })?.root).toBe(fake);
  });

  it('finds the toolkit of an nvcc on PATH', () => {
    const fake = join(scratchDir, 'on-path');
    mkdirSync(join(fake, 'bin'), { recursive: true });
    mkdirSync(join(fake, 'include'));
    writeFileSync(join(fake, 'bin', 'nvcc'), '');
    writeFileSync(join(fake, 'include', 'cuda_runtime.h'), '');
    expect(findCuda({ env: { PATH: join(fake, 'bin') }, fallbackRoots: [] })?.root).toBe(fake);
  });
});

// Locating the CUDA toolkit and building the addon. Used by build-native.mjs (the package's
// build step) and cuda-root.mjs (binding.gyp asks it for the toolkit path).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The line printed when the CUDA build is skipped because there is no toolkit. */
export const SKIP_NO_NVCC = '@blora/cuda-kernels: nvcc not found, skipping the CUDA build';
/** The line printed when the CUDA build is switched off with BLORA_CUDA=off. */
export const SKIP_DISABLED = '@blora/cuda-kernels: BLORA_CUDA=off, skipping the CUDA build';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function isToolkit(root) {
  return Boolean(root) && existsSync(join(root, 'bin', 'nvcc')) && existsSync(join(root, 'include', 'cuda_runtime.h'));
}

function nvccOnPath(pathVariable) {
  for (const dir of (pathVariable ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'nvcc'))) return join(dir, 'nvcc');
  }
  return null;
}

// The toolkit root of an nvcc binary; a wrapper script is asked where the real one lives.
function rootOfNvcc(nvcc) {
  const direct = resolve(dirname(realpathSync(nvcc)), '..');
  if (isToolkit(direct)) return direct;
  const probe = spawnSync(nvcc, ['-dryrun', '-E', '-x', 'cu', '/dev/null'], { encoding: 'utf8' });
  const top = /^#\$ TOP=(.*)$/m.exec(`${probe.stdout ?? ''}${probe.stderr ?? ''}`);
  return top ? resolve(top[1].trim()) : null;
}

/**
 * The CUDA toolkit to build with: $CUDA_HOME, $CUDA_PATH, the nvcc on $PATH, then the
 * `fallbackRoots` (default /usr/local/cuda). Returns null when none holds nvcc and the headers.
 */
export function findCuda({ env = process.env, fallbackRoots = ['/usr/local/cuda'] } = {}) {
  const candidates = [env.CUDA_HOME, env.CUDA_PATH];
  const nvcc = nvccOnPath(env.PATH);
  if (nvcc) candidates.push(rootOfNvcc(nvcc));
  candidates.push(...fallbackRoots);
  for (const root of candidates) {
    if (root && isToolkit(root)) return { root, nvcc: join(root, 'bin', 'nvcc') };
  }
  return null;
}

// Node's own headers next to the running binary (installed with Node), so node-gyp needs
// no download; null when they are missing or of another version.
function localNodeHeaders() {
  const prefix = resolve(dirname(process.execPath), '..');
  try {
    const header = readFileSync(join(prefix, 'include', 'node', 'node_version.h'), 'utf8');
    const part = (name) => header.match(new RegExp(`#define NODE_${name}_VERSION (\\d+)`))?.[1];
    const version = `v${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
    return version === process.version ? prefix : null;
  } catch {
    return null;
  }
}

/**
 * Builds build/Release/blora_cuda.node with node-gyp when a CUDA toolkit is found; otherwise
 * logs one line and succeeds. Returns the exit code.
 */
export function buildNative({ env = process.env, fallbackRoots, log = console.log, spawn = spawnSync } = {}) {
  if (env.BLORA_CUDA === 'off') {
    log(SKIP_DISABLED);
    return 0;
  }
  const cuda = findCuda({ env, fallbackRoots });
  if (!cuda) {
    log(SKIP_NO_NVCC);
    return 0;
  }
  const nodeGyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  const args = [nodeGyp, 'rebuild', '--jobs', String(Math.max(1, Math.min(cpus().length, 8)))];
  const headers = env.npm_config_nodedir ? null : localNodeHeaders();
  if (headers) args.push(`--nodedir=${headers}`);
  log(`@blora/cuda-kernels: building the CUDA addon with ${cuda.nvcc}`);
  const started = Date.now();
  const result = spawn(process.execPath, args, {
    cwd: packageRoot,
    stdio: 'inherit',
    env: { ...env, BLORA_CUDA_ROOT: cuda.root },
  });
  if (result.status !== 0) {
    log(`@blora/cuda-kernels: the CUDA build failed (node-gyp exit code ${result.status ?? result.signal})`);
    return result.status || 1;
  }
  log(`@blora/cuda-kernels: built build/Release/blora_cuda.node in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return 0;
}

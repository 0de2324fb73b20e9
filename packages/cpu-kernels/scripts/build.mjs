// Builds the native addon with node-gyp when a C++ toolchain (compiler, make, Python) is
// present. Without one it prints a single line and succeeds: the package then keeps the
// TypeScript kernels. A failed compile with a toolchain present is an error.
//
// BLORA_CPU_KERNELS_BUILD=off skips the native build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const prefix = '@blora/cpu-kernels:';

/** True when `command --version` runs and exits 0. */
function runs(command) {
  const [cmd, ...args] = command.trim().split(/\s+/);
  const result = spawnSync(cmd, [...args, '--version'], { stdio: 'ignore' });
  return result.status === 0;
}

function firstThatRuns(candidates) {
  return candidates.filter(Boolean).find(runs);
}

/** Headers of the running Node, when its installation ships them (lets node-gyp work offline). */
function localNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const installRoot = resolve(dirname(process.execPath), '..');
  return existsSync(join(installRoot, 'include', 'node', 'node.h')) ? installRoot : undefined;
}

if (process.env.BLORA_CPU_KERNELS_BUILD === 'off') {
  console.log(`${prefix} native build skipped (BLORA_CPU_KERNELS_BUILD=off), using the TypeScript kernels`);
  process.exit(0);
}

const windows = process.platform === 'win32';
const python = firstThatRuns([process.env.PYTHON, process.env.npm_config_python, 'python3', 'python']);
// node-gyp finds Visual Studio itself on Windows; elsewhere it needs a compiler and make.
const compiler = windows ? 'msvc' : firstThatRuns([process.env.CXX, 'c++', 'g++', 'clang++']);
const make = windows || runs('make') || runs('gmake');
let nodeGyp;
try {
  nodeGyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
} catch {
  nodeGyp = undefined;
}
if (!python || !compiler || !make || !nodeGyp) {
  console.log(`${prefix} no C++ toolchain, using the TypeScript kernels`);
  process.exit(0);
}

const nodeDir = localNodeDir();
const args = [nodeGyp, 'rebuild', '--loglevel=warn', '--jobs=max', ...(nodeDir ? [`--nodedir=${nodeDir}`] : [])];
const started = Date.now();
const result = spawnSync(process.execPath, args, { cwd: packageRoot, stdio: 'inherit', env: { ...process.env, PYTHON: python } });
if (result.status !== 0) {
  if (windows) {
    // Without Visual Studio node-gyp fails here; that is the "no toolchain" case on Windows.
    console.log(`${prefix} no C++ toolchain, using the TypeScript kernels`);
    process.exit(0);
  }
  console.error(`${prefix} native build failed (node-gyp exit ${result.status ?? result.signal}); set BLORA_CPU_KERNELS_BUILD=off to skip it`);
  process.exit(result.status || 1);
}
console.log(`${prefix} built build/Release/blora_cpu.node in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// Where the peer libraries live (bench/.peers/, filled by install.mjs) and how the suites load
// them: a missing or broken peer yields { skipped: reason } instead of an exception.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Peer packages and the exact versions the suites are written against. */
export const PEERS = {
  'onnxruntime-node': '1.30.0',
  '@tensorflow/tfjs': '4.22.0',
  '@tensorflow/tfjs-backend-wasm': '4.22.0',
};

/** The folder the peers are installed into. */
export const PEERS_DIR = fileURLToPath(new URL('../.peers', import.meta.url));

const requirePeer = createRequire(join(PEERS_DIR, 'package.json'));

/** The installed version of a peer package, or null. */
export function peerVersion(name) {
  const file = join(PEERS_DIR, 'node_modules', name, 'package.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).version : null;
}

/** Loads a peer with `require` from bench/.peers/: { module } or { skipped: reason }. */
export function loadPeer(name) {
  if (!peerVersion(name)) return { skipped: `${name} not installed (run npm run bench:peers)` };
  try {
    return { module: requirePeer(name), version: peerVersion(name) };
  } catch (error) {
    return { skipped: `${name} failed to load: ${error.message.split('\n')[0]}` };
  }
}

/** onnxruntime-node: { ort, version } or { skipped }. */
export function loadOnnxRuntime() {
  const r = loadPeer('onnxruntime-node');
  return r.module ? { ort: r.module, version: r.version } : r;
}

/**
 * tfjs with the wasm backend on one thread (the build Node loads without patching), ready:
 * { tf, version } or { skipped }.
 */
export async function loadTfjsWasm() {
  const core = loadPeer('@tensorflow/tfjs');
  if (!core.module) return core;
  const wasm = loadPeer('@tensorflow/tfjs-backend-wasm');
  if (!wasm.module) return wasm;
  const tf = core.module;
  try {
    // Silence tfjs's "hi there" console hint about tfjs-node.
    const log = console.log;
    const warn = console.warn;
    console.log = () => {};
    console.warn = () => {};
    try {
      if (!(await tf.setBackend('wasm'))) return { skipped: 'tfjs wasm backend did not initialise' };
      await tf.ready();
    } finally {
      console.log = log;
      console.warn = warn;
    }
    return { tf, version: core.version };
  } catch (error) {
    return { skipped: `tfjs wasm backend: ${error.message.split('\n')[0]}` };
  }
}

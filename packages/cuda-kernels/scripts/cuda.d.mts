// Types of cuda.mjs, for the tests that import it.
import type { spawnSync } from 'node:child_process';

/** A CUDA toolkit found on this machine. */
export interface CudaToolkit {
  /** The toolkit directory (holding bin/nvcc and include/cuda_runtime.h). */
  root: string;
  /** Path of nvcc. */
  nvcc: string;
}

/** The line printed when the CUDA build is skipped because there is no toolkit. */
export const SKIP_NO_NVCC: string;
/** The line printed when the CUDA build is switched off with BLORA_CUDA=off. */
export const SKIP_DISABLED: string;

/** Finds the CUDA toolkit: $CUDA_HOME, $CUDA_PATH, nvcc on $PATH, then `fallbackRoots`. */
export function findCuda(options?: { env?: NodeJS.ProcessEnv; fallbackRoots?: readonly string[] }): CudaToolkit | null;

/** Builds the addon with node-gyp when a toolkit is found, else logs one line; returns the exit code. */
export function buildNative(options?: {
  env?: NodeJS.ProcessEnv;
  fallbackRoots?: readonly string[];
  log?: (line: string) => void;
  spawn?: typeof spawnSync;
}): number;

// Runs the GPU benchmark of the fused 4-bit kernels (quant.bench.ts) as a single long test, with @blora/*
// resolved to their TypeScript sources. From the repository root:
//   npx vitest run --config bench/gpu/quant.vitest.config.ts
import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { packageTestConfig } from '../../vitest.shared.js';

export default mergeConfig(packageTestConfig({ include: ['quant.bench.ts'], testTimeout: 3_600_000 }), {
  root: fileURLToPath(new URL('.', import.meta.url)),
  // Keep the runner's cache with the repository's other caches rather than in this folder.
  cacheDir: fileURLToPath(new URL('../../node_modules/.vite/bench-gpu-quant', import.meta.url)),
  test: { hookTimeout: 600_000, fileParallelism: false },
});

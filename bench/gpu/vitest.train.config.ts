// Runs the training-step benchmark (train-step.bench.ts) and its CPU check (train-step.test.ts),
// with @blora/* resolved to their TypeScript sources. From the repository root:
//   npx vitest run --config bench/gpu/vitest.train.config.ts train-step.bench   (the benchmark)
//   npx vitest run --config bench/gpu/vitest.train.config.ts train-step.test    (the CPU check)
import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { packageTestConfig } from '../../vitest.shared.js';

export default mergeConfig(packageTestConfig({ include: ['train-step.bench.ts', 'train-step.test.ts'], testTimeout: 3_600_000 }), {
  root: fileURLToPath(new URL('.', import.meta.url)),
  // Keep the runner's cache with the repository's other caches rather than in this folder.
  cacheDir: fileURLToPath(new URL('../../node_modules/.vite/bench-gpu-train', import.meta.url)),
  test: { hookTimeout: 600_000, fileParallelism: false },
});

// Runs the training-step memory report (step-memory.bench.ts) with @blora/* resolved to their
// TypeScript sources. From the repository root:
//   npx vitest run --config bench/memory/vitest.config.ts
import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { packageTestConfig } from '../../vitest.shared.js';

export default mergeConfig(packageTestConfig({ include: ['step-memory.bench.ts'], testTimeout: 600_000 }), {
  root: fileURLToPath(new URL('.', import.meta.url)),
  // Keep the runner's cache with the repository's other caches rather than in this folder.
  cacheDir: fileURLToPath(new URL('../../node_modules/.vite/bench-memory', import.meta.url)),
  test: { fileParallelism: false },
});

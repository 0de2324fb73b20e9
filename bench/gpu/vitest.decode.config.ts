// Runs the token-by-token generation benchmark (decode.bench.ts) with @blora/* resolved to their
// TypeScript sources. From the repository root:
//   npx vitest run --config bench/gpu/vitest.decode.config.ts
// (BLORA_BENCH_DECODE_DEVICE=cpu: a tiny model on the CPU, a smoke check.)
import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { packageTestConfig } from '../../vitest.shared.js';

export default mergeConfig(packageTestConfig({ include: ['decode.bench.ts'], testTimeout: 3_600_000 }), {
  root: fileURLToPath(new URL('.', import.meta.url)),
  cacheDir: fileURLToPath(new URL('../../node_modules/.vite/bench-gpu-decode', import.meta.url)),
  test: { hookTimeout: 600_000, fileParallelism: false },
});

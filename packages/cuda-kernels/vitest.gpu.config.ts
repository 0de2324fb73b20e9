// The GPU test run, from the repository root: `npm run test:gpu`. It runs test/gpu only,
// one file at a time (one GPU), and requires a usable GPU: without one the run fails with
// the reason instead of passing by skipping everything.
import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { packageTestConfig } from '../../vitest.shared.js';

export default mergeConfig(packageTestConfig({ include: ['test/gpu/**/*.test.ts'], testTimeout: 120_000 }), {
  root: fileURLToPath(new URL('.', import.meta.url)),
  test: {
    env: { BLORA_REQUIRE_CUDA: '1' },
    fileParallelism: false,
  },
});

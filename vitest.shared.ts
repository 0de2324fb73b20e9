// Shared vitest settings: resolve @blora/* packages to their TypeScript sources
// (the "@blora/source" export condition) so tests need no build step.
import { defineConfig } from 'vitest/config';

const conditions = ['@blora/source', 'import', 'module', 'node', 'default'];

export function packageTestConfig(extra: { include?: string[]; testTimeout?: number } = {}) {
  return defineConfig({
    resolve: { conditions },
    ssr: { resolve: { conditions, externalConditions: conditions } },
    test: {
      include: extra.include ?? ['test/**/*.test.ts'],
      testTimeout: extra.testTimeout ?? 60_000,
      pool: 'forks',
    },
  });
}

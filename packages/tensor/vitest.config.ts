import { mergeConfig } from 'vitest/config';
import { packageTestConfig } from '../../vitest.shared.js';

// --expose-gc: test/finalization.test.ts checks what the collector frees.
export default mergeConfig(packageTestConfig(), { test: { execArgv: ['--expose-gc'] } });

// The package's native build step: compiles the CUDA addon when a CUDA toolkit is present,
// otherwise prints one line and exits 0 so that builds without CUDA still succeed.
import { buildNative } from './cuda.mjs';

process.exitCode = buildNative();

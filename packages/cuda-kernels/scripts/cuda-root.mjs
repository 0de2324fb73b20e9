// Prints the CUDA toolkit root for binding.gyp: $BLORA_CUDA_ROOT (set by build-native.mjs),
// else the toolkit findCuda locates, else /usr/local/cuda.
import { findCuda } from './cuda.mjs';

console.log(process.env.BLORA_CUDA_ROOT || findCuda()?.root || '/usr/local/cuda');

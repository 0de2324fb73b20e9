// Registers the CPU backend and all its kernels.
import './backend.js';
import './copy.js';
import './binary.js';

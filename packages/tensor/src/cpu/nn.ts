// CPU kernels of the fused transformer ops, one file per op.
import './nn/rmsnorm.js';
import './nn/rope.js';
import './nn/cross-entropy.js';
import './nn/attention.js';

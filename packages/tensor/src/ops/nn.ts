// Fused transformer ops (forward and backward kernels per device), one file per op.
export { statsDTypeOf } from './nn/common.js';
export * from './nn/rmsnorm.js';
export * from './nn/rope.js';
export * from './nn/cross-entropy.js';
export * from './nn/attention.js';

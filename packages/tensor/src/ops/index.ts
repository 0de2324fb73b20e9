// Public op front ends, one file per family.
export * from './creation.js';
export * from './views.js';
export * from './unary.js';
export * from './binary.js';
export * from './compare.js';
export * from './reduce.js';
export * from './softmax.js';
export * from './matmul.js';
export * from './indexing.js';
export * from './join.js';
export * from './pool.js';
export * from './adapter.js';
export * from './random.js';
export * from './nn.js';
export * from './optim.js';
export * from './write.js';

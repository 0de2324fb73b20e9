// Public op front ends.
export * from './creation.js';
export * from './views.js';
export * from './binary.js';

// Registers the gradient rule of every differentiable op of @blora/tensor.
import './views.js';
import './elementwise.js';
import './reduce.js';
import './matmul.js';
import './indexing.js';
import './pool.js';
import './adapter.js';

// Registers the CPU backend and all its kernels.
import './backend.js';
import './copy.js';
import './unary.js';
import './binary.js';
import './compare.js';
import './reduce.js';
import './softmax.js';
import './matmul.js';
import './indexing.js';
import './join.js';
import './pool.js';
import './adapter.js';
import './random.js';
import './nn.js';
import './optim.js';

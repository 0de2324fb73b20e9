// Gradient rule of matmul. The front end hands the kernel operands of rank >= 2 with equal
// batch dims (1-D operands reshaped, batch dims broadcast with expand), so the rule only
// needs the 2-D identities; the reshape and expand rules undo the rest.
import { matmul, transpose } from '@blora/tensor';
import { registerGradient } from '../gradients.js';
import { crossInputs } from './util.js';

// c = a b: da = g b^T, db = a^T g. Transposes are views, read in place by the kernel.
registerGradient('matmul', ({ inputs: [a, b], outputGrads: [g], needsGrad }) => [
  needsGrad[0] ? matmul(g!, transpose(b!)) : null,
  needsGrad[1] ? matmul(transpose(a!), g!) : null,
], { inputs: crossInputs, outputs: [] });


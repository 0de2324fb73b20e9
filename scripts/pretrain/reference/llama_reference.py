"""Independent NumPy forward pass of a Hugging Face LlamaForCausalLM checkpoint.

Reads config.json and model.safetensors (float32, one file) the way transformers defines the
model (RMSNorm, rotate-half RoPE, grouped-query causal attention, SwiGLU MLP, tied or separate
head) in float64, and prints the mean next-token loss over token windows given as a JSON list
of id lists. Used by check-reference.mjs to check the saved checkpoint against the engine.

Usage: python3 llama_reference.py MODEL_DIR WINDOWS.json
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    raw = open(path, 'rb').read()
    size = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    base = 8 + size
    tensors = {}
    for name, entry in header.items():
        if name == '__metadata__':
            continue
        if entry['dtype'] != 'F32':
            raise SystemExit(f'{name}: dtype {entry["dtype"]} (this reference reads F32 only)')
        begin, end = entry['data_offsets']
        tensors[name] = np.frombuffer(raw[base + begin:base + end], dtype='<f4').reshape(entry['shape']).astype(np.float64)
    return tensors


def main(model_dir, windows_path):
    cfg = json.load(open(f'{model_dir}/config.json'))
    w = read_safetensors(f'{model_dir}/model.safetensors')
    heads, kv_heads = cfg['num_attention_heads'], cfg.get('num_key_value_heads', cfg['num_attention_heads'])
    head_dim = cfg.get('head_dim') or cfg['hidden_size'] // heads
    eps, theta = cfg['rms_norm_eps'], cfg.get('rope_theta', 10000.0)
    head = w['model.embed_tokens.weight'] if cfg.get('tie_word_embeddings', False) else w['lm_head.weight']

    def rms_norm(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    def rotate_half(x):
        return np.concatenate([-x[..., head_dim // 2:], x[..., :head_dim // 2]], -1)

    def logits(ids):
        t = len(ids)
        h = w['model.embed_tokens.weight'][ids]
        inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
        angles = np.outer(np.arange(t), inv_freq)
        angles = np.concatenate([angles, angles], -1)
        cos, sin = np.cos(angles), np.sin(angles)
        mask = np.triu(np.full((t, t), -np.inf), 1)
        for i in range(cfg['num_hidden_layers']):
            p = f'model.layers.{i}.'
            x = rms_norm(h, w[p + 'input_layernorm.weight'])
            q = (x @ w[p + 'self_attn.q_proj.weight'].T).reshape(t, heads, head_dim).transpose(1, 0, 2)
            k = (x @ w[p + 'self_attn.k_proj.weight'].T).reshape(t, kv_heads, head_dim).transpose(1, 0, 2)
            v = (x @ w[p + 'self_attn.v_proj.weight'].T).reshape(t, kv_heads, head_dim).transpose(1, 0, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = np.repeat(k, heads // kv_heads, 0), np.repeat(v, heads // kv_heads, 0)
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(head_dim) + mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            h = h + (scores @ v).transpose(1, 0, 2).reshape(t, heads * head_dim) @ w[p + 'self_attn.o_proj.weight'].T
            x = rms_norm(h, w[p + 'post_attention_layernorm.weight'])
            gate = x @ w[p + 'mlp.gate_proj.weight'].T
            h = h + ((gate / (1 + np.exp(-gate))) * (x @ w[p + 'mlp.up_proj.weight'].T)) @ w[p + 'mlp.down_proj.weight'].T
        return rms_norm(h, w['model.norm.weight']) @ head.T

    total, count = 0.0, 0
    for ids in json.load(open(windows_path)):
        z = logits(np.array(ids))[:-1]
        top = z.max(-1)
        lse = top + np.log(np.exp(z - top[:, None]).sum(-1))
        total += float((lse - z[np.arange(len(ids) - 1), ids[1:]]).sum())
        count += len(ids) - 1
    print(json.dumps({'loss': total / count, 'tokens': count}))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])

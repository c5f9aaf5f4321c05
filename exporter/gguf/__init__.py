"""GGUF files read and their quantized blocks carried into onnxruntime's MatMulNBits unchanged.

blocks.py   BlockWeight: one [N, K] weight as integer codes + per-block scales (+ minimums)
quants/     one class per ggml block type (Q4_0 ... Q6_K), each unpacking its bytes exactly
reader.py   GgufFile: tensors and metadata of a .gguf file
carry.py    which tensors of which architecture become which torch module, in HF row order
The block math of every type is written down in docs/gguf-quants.md.
"""

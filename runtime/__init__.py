"""Torch-free code that runs exported files: the KV-cache decoder and text-tower feeds on Python
onnxruntime, the written image processor, and the progress helper. The exporter's parity checks,
reference/ and bench/ all import it; it imports nothing of theirs (only contract/)."""

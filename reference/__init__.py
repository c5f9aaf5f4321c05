"""Python references of what the browser computes: the exported ONNX towers and LLM run by Python
onnxruntime, and FuDD re-ranking over them. Tests compare the browser with these."""

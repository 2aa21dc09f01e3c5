"""ffsr_convert: checkpoint → FFmpeg-loadable model recipes (needs the `convert` extras:
TensorFlow, PyTorch, spandrel, onnx, onnxruntime). Imported lazily by ffsr."""

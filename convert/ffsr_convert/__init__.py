"""ffsr_convert: checkpoint → FFmpeg-loadable model recipes (needs the `convert` extras:
TensorFlow, PyTorch, spandrel, onnx, onnxruntime). Imported lazily by ffsr."""

import os
import warnings

# TensorFlow's C++ start-up chatter and torch.jit's deprecation notices say nothing
# actionable to a user converting a model.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")

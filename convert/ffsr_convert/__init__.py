"""ffsr_convert: checkpoint → FFmpeg-loadable model recipes (needs the `convert` extras:
TensorFlow, PyTorch, spandrel, onnx, onnxruntime). Imported lazily by ffsr."""

import os
import sys
import warnings

# Triton's LLVM and TensorFlow's LLVM abort the process when both load ("LLVM ERROR:
# inconsistency in registered CommandLine options"); torchvision (via spandrel) pulls in
# torch._dynamo, which imports triton if it can. Conversion is CPU export and never needs
# triton, so make it unimportable here.
if "triton" not in sys.modules:
    sys.modules["triton"] = None  # type: ignore[assignment]

# TensorFlow's C++ start-up chatter and torch.jit's deprecation notices say nothing
# actionable to a user converting a model.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")

"""ffsr_convert: checkpoint → FFmpeg-loadable model recipes (needs the `convert` extras:
TensorFlow, PyTorch, spandrel, onnx, onnxruntime). Imported lazily by ffsr."""

import os
import sys
import tempfile
import warnings
from types import ModuleType

# Triton's LLVM and TensorFlow's LLVM abort the process when both load ("LLVM ERROR:
# inconsistency in registered CommandLine options"); torchvision (via spandrel) pulls in
# torch._dynamo, which imports triton if it can. Conversion is CPU export and never needs
# triton, so make it unimportable here.
if "triton" not in sys.modules:
    sys.modules["triton"] = None  # type: ignore[assignment]

# TensorFlow's C++ start-up chatter and torch.jit's deprecation notices say nothing
# actionable to a user converting a model (level 3 also hides "failed call to cuInit").
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")


def import_tensorflow() -> ModuleType:
    """TensorFlow, imported with its load-time lines ("All log messages before
    absl::InitializeLog()…", cudart_stub, oneDNN) kept off the user's terminal: they are
    written by C++ before any log level applies, so fd 2 is parked during the import and
    its text re-emitted only if the import fails."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as parked:
        os.dup2(parked.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved, 2)
            parked.seek(0)
            sys.stderr.write(parked.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow

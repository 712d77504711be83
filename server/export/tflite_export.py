"""Export a network to a .tflite flatbuffer with litert-torch (no TensorFlow needed).

The model keeps the torch input layout (NCHW, the shape the job's settings carry): litert-torch
adds the transposes to LiteRT's NHWC kernels inside the graph, so agents feed the same tensor to
every format. Conversion takes seconds and is not known to be thread-safe (torch.export, MLIR
context), so conversions run one at a time.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

_LOCK = threading.Lock()


def export_tflite(module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """Serialise `module` (in eval mode) for a fixed `input_shape` (batch first) to .tflite bytes.

    Same weights, same bytes: the converter embeds no paths or times (checked in the tests).
    """
    import litert_torch  # heavy (pulls in jax, torchao): only servers that export TFLite pay

    # Its progress lines go to stdout for every stage; a server's log is not the place for them.
    litert_torch.config.show_progress = False
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with _LOCK, torch.no_grad():
            model = litert_torch.convert(module, (torch.zeros(input_shape),))
            return bytes(model.model_content())
    finally:
        for m, training in modes.items():
            m.training = training

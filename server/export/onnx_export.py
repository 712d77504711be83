"""Export a network to ONNX bytes for the device agents (parity.py checks them against torch).

The legacy TorchScript exporter is used on purpose: it needs no `onnxscript`, handles these plain
CNNs fully, and gives the same bytes for the same weights, so an export can be cached by hash.
"""

from __future__ import annotations

import io
import threading
import warnings

import onnx
import torch
from torch import nn

OPSET = 17
OUTPUT_NAME = "logits"
# torch.onnx.export keeps its state in module globals (GLOBALS.in_onnx_export...): two threads
# exporting at once fail each other's assertions, so the server's exports run one at a time.
_EXPORT_LOCK = threading.Lock()


def _training_modes(module: nn.Module) -> dict[nn.Module, bool]:
    """Which submodules were training, so callers get their module back unchanged."""
    return {m: m.training for m in module.modules()}


def _restore(modes: dict[nn.Module, bool]) -> None:
    for m, training in modes.items():
        m.training = training


def export_onnx(
    module: nn.Module, input_shape: tuple[int, ...], input_name: str = "input"
) -> bytes:
    """Serialise `module` (in eval mode) for a fixed `input_shape` (batch first) to ONNX bytes."""
    modes = _training_modes(module)
    module.eval()
    buffer = io.BytesIO()
    try:
        with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
            # The legacy exporter warns that it is deprecated on every call; that is known here.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(
                module,
                (torch.zeros(input_shape),),
                buffer,
                dynamo=False,
                opset_version=OPSET,
                input_names=[input_name],
                output_names=[OUTPUT_NAME],
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
            )
    finally:
        _restore(modes)
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    # Re-serialising fixes field order; nothing run-specific (paths, times) is embedded.
    return model.SerializeToString()

"""Write a small dense network (an MLP) as a TFLite flatbuffer, without TensorFlow.

TensorFlow is a 500 MB dependency for what is, for an MLP, a few tables of the
TFLite schema (``tensorflow/lite/schema/schema.fbs``); they are written here
with the ``flatbuffers`` builder. Only what a float32 ``FULLY_CONNECTED`` chain
needs is emitted: one subgraph whose input is ``[1, in]`` and whose output is
``[1, out]``, one operator per layer, the ReLU fused into the operator.

The field ids below are the schema's declaration order; they are part of the
TFLite file format and never change (the schema only appends fields).
Buffer 0 is the empty buffer the format reserves; activations point at it,
weights and biases each get their own buffer, 16-byte aligned as the schema's
``force_align: 16`` asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import flatbuffers  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

from ldt.models.manifest import ModelError

__all__ = ["Activation", "DenseLayer", "write_mlp"]

Activation = Literal["relu", "none"]

_SCHEMA_VERSION: Final = 3
_FILE_IDENTIFIER: Final = b"TFL3"
_FLOAT32: Final = 0  # TensorType.FLOAT32
_FULLY_CONNECTED: Final = 9  # BuiltinOperator.FULLY_CONNECTED
_FULLY_CONNECTED_OPTIONS: Final = 8  # BuiltinOptions.FullyConnectedOptions
_FUSED: Final[dict[str, int]] = {"none": 0, "relu": 1}  # ActivationFunctionType


@dataclass(frozen=True, slots=True)
class DenseLayer:
    """``y = activation(weights @ x + bias)``: ``weights`` is ``[out, in]``, ``bias`` ``[out]``.

    The ``[out, in]`` layout is TFLite's own for ``FULLY_CONNECTED`` weights, so
    the arrays are written as they are.
    """

    weights: NDArray[np.float32]
    bias: NDArray[np.float32]
    activation: Activation = "none"

    @property
    def inputs(self) -> int:
        """Width of the layer's input."""
        return int(self.weights.shape[1])

    @property
    def outputs(self) -> int:
        """Width of the layer's output."""
        return int(self.weights.shape[0])


def _check_layers(layers: Sequence[DenseLayer]) -> None:
    if not layers:
        raise ModelError("an MLP needs at least one layer")
    width: int | None = None
    for i, layer in enumerate(layers):
        w, b = layer.weights, layer.bias
        if w.ndim != 2 or b.ndim != 1 or b.shape[0] != w.shape[0] or 0 in w.shape:
            raise ModelError(
                f"layer {i}: weights must be [out, in] and bias [out], "
                f"got {list(w.shape)} and {list(b.shape)}"
            )
        if w.dtype != np.float32 or b.dtype != np.float32:
            raise ModelError(f"layer {i}: weights and bias must be float32")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ModelError(f"layer {i}: weights and bias must be finite")
        if layer.activation not in _FUSED:
            raise ModelError(f"layer {i}: activation must be 'relu' or 'none'")
        if width is not None and layer.inputs != width:
            raise ModelError(
                f"layer {i} takes {layer.inputs} inputs but layer {i - 1} gives {width}"
            )
        width = layer.outputs


def _int_vector(b: Any, values: Sequence[int]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependInt32(v)
    return int(b.EndVector())


def _offset_vector(b: Any, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return int(b.EndVector())


def _data_vector(b: Any, data: bytes) -> int:
    """A ``[ubyte]`` vector aligned to 16 bytes (``Buffer.data`` is ``force_align: 16``)."""
    b.StartVector(1, len(data), 16)
    b.head = b.head - len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return int(b.EndVector())


def _buffer(b: Any, data: bytes | None) -> int:
    vec = _data_vector(b, data) if data else None
    b.StartObject(3)
    if vec is not None:
        b.PrependUOffsetTRelativeSlot(0, vec, 0)
    return int(b.EndObject())


def _tensor(b: Any, name: str, shape: Sequence[int], buffer: int) -> int:
    name_off = b.CreateString(name)
    shape_off = _int_vector(b, shape)
    b.StartObject(10)
    b.PrependUOffsetTRelativeSlot(0, shape_off, 0)
    b.PrependInt8Slot(1, _FLOAT32, 0)
    b.PrependUint32Slot(2, buffer, 0)
    b.PrependUOffsetTRelativeSlot(3, name_off, 0)
    return int(b.EndObject())


def _fully_connected(b: Any, inputs: Sequence[int], outputs: Sequence[int], fused: int) -> int:
    b.StartObject(5)  # FullyConnectedOptions
    b.PrependInt8Slot(0, fused, 0)
    options = b.EndObject()
    in_off = _int_vector(b, inputs)
    out_off = _int_vector(b, outputs)
    b.StartObject(9)  # Operator
    b.PrependUint32Slot(0, 0, 0)  # opcode_index: the only operator code
    b.PrependUOffsetTRelativeSlot(1, in_off, 0)
    b.PrependUOffsetTRelativeSlot(2, out_off, 0)
    b.PrependUint8Slot(3, _FULLY_CONNECTED_OPTIONS, 0)
    b.PrependUOffsetTRelativeSlot(4, options, 0)
    return int(b.EndObject())


def _operator_code(b: Any) -> int:
    b.StartObject(4)
    b.PrependInt8Slot(0, _FULLY_CONNECTED, 0)  # deprecated_builtin_code, read by old runtimes
    b.PrependInt32Slot(2, 1, 1)  # version
    b.PrependInt32Slot(3, _FULLY_CONNECTED, 0)  # builtin_code
    return int(b.EndObject())


def write_mlp(layers: Sequence[DenseLayer], *, description: str = "ldt dense MLP") -> bytes:
    """The ``.tflite`` bytes of ``layers`` applied in order; raises ``ModelError``.

    The model's input tensor is ``[1, layers[0].inputs]`` float32 and its output
    ``[1, layers[-1].outputs]`` float32. The bytes are deterministic: the same
    layers give the same file.
    """
    _check_layers(layers)
    b = flatbuffers.Builder(1024)

    # buffers: 0 is the reserved empty one, then weights and bias of each layer
    buffer_data: list[bytes | None] = [None]
    for layer in layers:
        buffer_data.append(layer.weights.astype("<f4").tobytes())
        buffer_data.append(layer.bias.astype("<f4").tobytes())
    buffers = [_buffer(b, d) for d in buffer_data]

    # tensors: the input, then per layer its weights, bias and output
    tensors = [_tensor(b, "input", [1, layers[0].inputs], 0)]
    operators: list[int] = []
    current = 0
    for i, layer in enumerate(layers):
        base = len(tensors)
        last = i == len(layers) - 1
        tensors.append(_tensor(b, f"dense_{i}/weights", [layer.outputs, layer.inputs], 1 + 2 * i))
        tensors.append(_tensor(b, f"dense_{i}/bias", [layer.outputs], 2 + 2 * i))
        out_name = "output" if last else f"dense_{i}/output"
        tensors.append(_tensor(b, out_name, [1, layer.outputs], 0))
        operators.append(
            _fully_connected(b, [current, base, base + 1], [base + 2], _FUSED[layer.activation])
        )
        current = base + 2

    tensors_off = _offset_vector(b, tensors)
    sg_inputs = _int_vector(b, [0])
    sg_outputs = _int_vector(b, [current])
    operators_off = _offset_vector(b, operators)
    sg_name = b.CreateString("main")
    b.StartObject(6)  # SubGraph
    b.PrependUOffsetTRelativeSlot(0, tensors_off, 0)
    b.PrependUOffsetTRelativeSlot(1, sg_inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, sg_outputs, 0)
    b.PrependUOffsetTRelativeSlot(3, operators_off, 0)
    b.PrependUOffsetTRelativeSlot(4, sg_name, 0)
    subgraph = b.EndObject()

    codes_off = _offset_vector(b, [_operator_code(b)])
    subgraphs_off = _offset_vector(b, [subgraph])
    buffers_off = _offset_vector(b, buffers)
    description_off = b.CreateString(description)
    b.StartObject(8)  # Model
    b.PrependUint32Slot(0, _SCHEMA_VERSION, 0)
    b.PrependUOffsetTRelativeSlot(1, codes_off, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs_off, 0)
    b.PrependUOffsetTRelativeSlot(3, description_off, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers_off, 0)
    b.Finish(b.EndObject(), file_identifier=_FILE_IDENTIFIER)
    return bytes(b.Output())

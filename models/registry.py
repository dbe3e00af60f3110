"""The one registry of model families: ``build_model(spec, input_shape, n_outputs)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from models.cnn import CNN
from models.cnn1d import CNN1d
from models.fnn import FNN
from models.inception import InceptionNet
from models.resnet1d import ResNet1d
from models.rnn import RecurrentNet
from models.transformer import TransformerNet
from orchestrator.errors import ModelError, did_you_mean

# the architecture a family gets when model.channels / model.head_sizes are null
# resnet1d: half the widths of Wang et al. (64, 128, 128): as accurate on the small series sets
# of benchmarks/defaults.py and twice as fast on the CPU
CHANNELS = {"cnn": [32, 64], "cnn1d": [32, 64], "resnet1d": [32, 64, 64]}
HEAD_SIZES = {"resnet1d": [], "inception": []}
DEFAULT_HEAD = [128]


def channels_of(spec: Any) -> list[int]:
    return list(spec.channels) if spec.channels is not None else list(CHANNELS[spec.family])


def head_of(spec: Any) -> list[int]:
    if spec.head_sizes is not None:
        return list(spec.head_sizes)
    return list(HEAD_SIZES.get(spec.family, DEFAULT_HEAD))


def dropout_of(spec: Any) -> float:
    """``model.dropout``, with auto: 0.3 in the fnn, 0.1 elsewhere."""
    if spec.dropout == "auto":
        return 0.3 if spec.family == "fnn" else 0.1
    return float(spec.dropout)


def batch_norm_of(spec: Any) -> bool:
    """``model.batch_norm``, with auto: off in the fnn, on elsewhere."""
    return spec.family != "fnn" if spec.batch_norm == "auto" else bool(spec.batch_norm)


def _fnn(spec: Any, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return FNN(
        shape[0],
        n_outputs,
        hidden_sizes=list(spec.hidden_sizes),
        activation=spec.activation,
        dropout=dropout_of(spec),
        batch_norm=batch_norm_of(spec),
        linear_skip=spec.linear_skip,
    )


def _conv_args(spec: Any) -> dict[str, Any]:
    return dict(
        channels=channels_of(spec),
        head_sizes=head_of(spec),
        kernel_size=spec.kernel_size,
        stride=spec.stride,
        padding=spec.padding,
        pool=spec.pool,
        activation=spec.activation,
        dropout=dropout_of(spec),
        batch_norm=batch_norm_of(spec),
    )


def _cnn(spec: Any, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return CNN(shape, n_outputs, **_conv_args(spec))


def _cnn1d(spec: Any, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return CNN1d(shape, n_outputs, **_conv_args(spec))


def _resnet1d(spec: Any, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return ResNet1d(
        shape,
        n_outputs,
        channels=channels_of(spec),
        head_sizes=head_of(spec),
        activation=spec.activation,
        dropout=dropout_of(spec),
        batch_norm=batch_norm_of(spec),
    )


def _inception(spec: Any, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return InceptionNet(
        shape,
        n_outputs,
        depth=spec.depth,
        filters=spec.filters,
        max_kernel=spec.max_kernel,
        head_sizes=head_of(spec),
        activation=spec.activation,
        dropout=dropout_of(spec),
        batch_norm=batch_norm_of(spec),
    )


def _recurrent(spec: Any, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return RecurrentNet(
        shape,
        n_outputs,
        cell=spec.family,
        hidden_size=spec.hidden_size,
        num_layers=spec.num_layers,
        bidirectional=spec.bidirectional,
        head_sizes=head_of(spec),
        activation=spec.activation,
        dropout=dropout_of(spec),
        batch_norm=batch_norm_of(spec),
    )


def _transformer(spec: Any, shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return TransformerNet(
        shape,
        n_outputs,
        d_model=spec.d_model,
        num_heads=spec.num_heads,
        num_layers=spec.num_layers,
        dim_feedforward=spec.dim_feedforward,
        positional=spec.positional,
        head_sizes=head_of(spec),
        activation=spec.activation,
        dropout=dropout_of(spec),
        batch_norm=batch_norm_of(spec),
    )


Builder = Callable[[Any, tuple[int, ...], int], nn.Module]
TABLE = ("table", "(F,)", 1)
IMAGE = ("image", "(C, H, W)", 3)
SEQUENCE = ("sequence", "(T, F)", 2)

# family -> (builder, (input kind, expected shape, rank))
FAMILIES: dict[str, tuple[Builder, tuple[str, str, int]]] = {
    "fnn": (_fnn, TABLE),
    "cnn": (_cnn, IMAGE),
    "cnn1d": (_cnn1d, SEQUENCE),
    "resnet1d": (_resnet1d, SEQUENCE),
    "inception": (_inception, SEQUENCE),
    "rnn": (_recurrent, SEQUENCE),
    "lstm": (_recurrent, SEQUENCE),
    "gru": (_recurrent, SEQUENCE),
    "transformer": (_transformer, SEQUENCE),
}


def build_model(spec: Any, input_shape: Sequence[int], n_outputs: int) -> nn.Module:
    """Build the network named by ``spec.family`` (an ``orchestrator.config.ModelConfig``).

    ``input_shape`` excludes the batch: ``(F,)`` for fnn, ``(C, H, W)`` for cnn and ``(T, F)`` for
    the sequence families. The module's ``forward(x, lengths=None)`` returns ``(batch, n_outputs)``.
    """
    family = spec.family
    if family == "auto":
        raise ModelError(
            "model.family 'auto' must be resolved before building a model; "
            f"choose one of {', '.join(FAMILIES)}"
        )
    if family not in FAMILIES:
        raise ModelError(
            f"model.family must be one of {', '.join(FAMILIES)}, got {family!r}"
            f"{did_you_mean(family, FAMILIES)}"
        )
    builder, (kind, expected, rank) = FAMILIES[family]
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != rank or min(shape, default=0) < 1:
        raise ModelError(
            f"model.family '{family}' needs {kind} input {expected}, got shape {shape}"
        )
    if int(n_outputs) < 1:
        raise ModelError(f"a model needs at least 1 output, got n_outputs={n_outputs}")
    return builder(spec, shape, int(n_outputs))

"""Seeded synthetic time-series classification sets, shaped like sets of the UCR/UEA archives.

Every generator is deterministic for its seed and uses numpy only. The fixed-length ones return
``(X_train, y_train, X_test, y_test)``: X float32 of shape ``(N, T)`` (univariate) or
``(N, T, F)``, y int64 labels 0..k-1. :func:`variable_length_multichannel` returns a
:class:`VariableLengthSet` (X padded with NaN after each series' length, plus the lengths).

:func:`one_nn_accuracy` is the archive's reference baseline (1-NN, Euclidean distance) and
:func:`write_split` writes a set in the formats ``automl`` reads: a UCR ``.tsv`` for univariate
series, an ``.npz`` with ``X``, ``y``, ``lengths`` and ``modality`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SeriesSet = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class VariableLengthSet:
    """Multichannel sequences of varying length: ``X_*`` is ``(N, T_max, F)`` float32 with NaN
    after each series' length (``lengths_*``, int64); ``y_*`` is int64."""

    X_train: np.ndarray
    y_train: np.ndarray
    lengths_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    lengths_test: np.ndarray


def balanced_labels(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """``n`` labels in shuffled order, class sizes differing by at most one."""
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], phi: float) -> np.ndarray:
    """AR(1) noise along the last axis with unit stationary variance."""
    white = rng.normal(size=shape) * np.sqrt(1 - phi**2)
    out = np.empty(shape)
    out[:, 0] = rng.normal(size=shape[0])
    for t in range(1, shape[1]):
        out[:, t] = phi * out[:, t - 1] + white[:, t]
    return out


def _split(X: np.ndarray, y: np.ndarray, n_train: int) -> SeriesSet:
    X = X.astype(np.float32)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


# --------------------------------------------------------------------------- univariate
def gunpoint_like(
    seed: int = 0, n_train: int = 50, n_test: int = 150, length: int = 150
) -> SeriesSet:
    """Like UCR GunPoint: a hand's motion, a plateau bump (rise, hold, fall) at a random
    position and width. Class 1 overshoots: a small dip just before the rise and after the
    fall. Random offset and scale per series; smooth and white noise."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = np.concatenate([balanced_labels(rng, n_train, 2), balanced_labels(rng, n_test, 2)])
    t = np.linspace(0.0, 1.0, length)[None, :]
    centre = rng.uniform(0.45, 0.55, (n, 1))
    half = rng.uniform(0.15, 0.18, (n, 1))  # half the hold's width
    ramp = rng.uniform(0.012, 0.022, (n, 1))  # the rise's steepness
    start, end = centre - half, centre + half
    bump = _sigmoid((t - start) / ramp) * _sigmoid((end - t) / ramp)
    depth = rng.uniform(0.2, 0.35, (n, 1)) * y[:, None]
    gap, width = 5 * ramp, rng.uniform(0.02, 0.03, (n, 1))
    dips = np.exp(-0.5 * ((t - (start - gap)) / width) ** 2)
    dips += np.exp(-0.5 * ((t - (end + gap)) / width) ** 2)
    signal = bump - depth * dips
    noise = 0.05 * _smooth_noise(rng, (n, length), 0.95) + 0.02 * rng.normal(size=(n, length))
    scale = rng.uniform(0.8, 1.25, (n, 1))
    offset = rng.normal(0.0, 0.1, (n, 1))
    return _split(offset + scale * (signal + noise), y, n_train)


def italypower_like(seed: int = 0, n_train: int = 67, n_test: int = 1029) -> SeriesSet:
    """Like UCR ItalyPowerDemand: 24 hourly loads of a day with a morning and an evening
    peak. Class 0 (winter): a high, early evening peak; class 1 (summer): a broad midday load
    and a lower, later evening peak. Per-day level, scale and noise."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = np.concatenate([balanced_labels(rng, n_train, 2), balanced_labels(rng, n_test, 2)])
    hour = np.arange(24.0)[None, :]
    summer = y[:, None].astype(float)
    # the seasons' means overlap through the per-day spread: some days look like the other
    morning_at = rng.normal(8.5 + 1.0 * summer, 0.7)
    morning = rng.normal(1.0 + 0.15 * summer, 0.15)
    evening_at = rng.normal(18.5 + 1.5 * summer, 0.8)
    evening = rng.normal(1.4 - 0.45 * summer, 0.2)
    midday = rng.normal(0.15 + 0.3 * summer, 0.1)
    night = 0.3 * np.exp(-0.5 * ((hour - 3.5) / 2.5) ** 2)
    load = (
        morning * np.exp(-0.5 * ((hour - morning_at) / 1.5) ** 2)
        + evening * np.exp(-0.5 * ((hour - evening_at) / 1.8) ** 2)
        + midday * np.exp(-0.5 * ((hour - 13.5) / 2.5) ** 2)
        - night
    )
    load += 0.08 * rng.normal(size=(n, 24))
    level = rng.uniform(2.0, 4.0, (n, 1))
    scale = rng.uniform(0.6, 1.4, (n, 1))
    return _split(level + scale * load, y, n_train)


def _shapelet_templates(width: int) -> np.ndarray:
    u = np.linspace(0.0, 1.0, width)
    spike = 1.0 - np.abs(2 * u - 1)  # a triangle
    square = ((u > 0.2) & (u < 0.8)).astype(float) - 0.3  # a step up and down
    wave = np.sin(2 * np.pi * u)  # one full period: up then down
    return np.stack([spike, square, wave])


def shapelets(
    seed: int = 0,
    length: int = 150,
    n_train: int = 100,
    n_test: int = 300,
    n_classes: int = 3,
    width: int = 15,
) -> SeriesSet:
    """Each class (2 or 3) has a short pattern (``width`` steps: a triangle, a square pulse or
    one sine period) at a random position in a noisy random-walk background. Euclidean 1-NN
    suffers from the phase shift; a shift-invariant convolution does not."""
    if n_classes not in (2, 3):
        raise ValueError(f"n_classes must be 2 or 3, got {n_classes}")
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = np.concatenate(
        [balanced_labels(rng, n_train, n_classes), balanced_labels(rng, n_test, n_classes)]
    )
    walk = np.cumsum(rng.normal(0.0, 0.15, (n, length)), axis=1)
    X = walk - walk.mean(axis=1, keepdims=True) + 0.25 * rng.normal(size=(n, length))
    templates = _shapelet_templates(width)
    start = rng.integers(0, length - width + 1, n)
    amplitude = rng.uniform(1.5, 2.5, n)
    for i in range(n):
        X[i, start[i] : start[i] + width] += amplitude[i] * templates[y[i]]
    return _split(X, y, n_train)


def frequency_classes(
    seed: int = 0, length: int = 200, n_train: int = 150, n_test: int = 300, n_classes: int = 3
) -> SeriesSet:
    """Noisy sinusoids with random phase and amplitude; class k's frequency is
    ``3 * 1.6**k`` cycles per series (3, 4.8, 7.7), jittered by 8%. The noise (std 1.5 against
    amplitudes 0.5 to 2) makes the weak ones hard; Euclidean 1-NN does well otherwise, since the
    training set covers the phases."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = np.concatenate(
        [balanced_labels(rng, n_train, n_classes), balanced_labels(rng, n_test, n_classes)]
    )
    t = np.linspace(0.0, 1.0, length, endpoint=False)[None, :]
    cycles = 3.0 * 1.6 ** y[:, None] * rng.uniform(0.92, 1.08, (n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1))
    amplitude = rng.uniform(0.5, 2.0, (n, 1))
    X = amplitude * np.sin(2 * np.pi * cycles * t + phase) + 1.5 * rng.normal(size=(n, length))
    return _split(X, y, n_train)


def long_series(
    seed: int = 0, length: int = 500, n_train: int = 100, n_test: int = 200
) -> SeriesSet:
    """500 steps of smooth noise and a slow wave. Class 1 has a burst of a fast oscillation
    (period 5 to 8 steps, about 60 steps long) somewhere; class 0 has none. The burst is a few
    percent of a series' energy, so Euclidean 1-NN is at chance."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = np.concatenate([balanced_labels(rng, n_train, 2), balanced_labels(rng, n_test, 2)])
    steps = np.arange(length)[None, :]
    slow = rng.uniform(0.5, 1.5, (n, 1)) * np.sin(
        2 * np.pi * steps / rng.uniform(150, 400, (n, 1)) + rng.uniform(0, 2 * np.pi, (n, 1))
    )
    X = slow + 0.5 * _smooth_noise(rng, (n, length), 0.9) + 0.1 * rng.normal(size=(n, length))
    centre = rng.uniform(50, length - 50, (n, 1))
    envelope = np.exp(-0.5 * ((steps - centre) / 15.0) ** 2)
    period = rng.uniform(5, 8, (n, 1))
    burst = rng.uniform(1.0, 1.5, (n, 1)) * envelope * np.sin(2 * np.pi * steps / period)
    X += burst * y[:, None]
    return _split(X, y, n_train)


# --------------------------------------------------------------------------- multichannel
def _trajectory_templates(rng: np.random.Generator, n_classes: int, n_channels: int):
    """Per class and channel, the coefficients of 4 cosines: smooth curves on [0, 1]. The
    classes share a common curve and differ by a smaller class-specific part."""
    common = rng.normal(0.0, 1.0, (1, n_channels, 4)) / np.arange(1, 5)
    own = rng.normal(0.0, 0.5, (n_classes, n_channels, 4)) / np.arange(1, 5)
    return common + own


def _evaluate(coef: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``(F, 4)`` cosine coefficients at times ``u`` (T,) -> ``(T, F)``."""
    basis = np.cos(np.pi * np.arange(4)[:, None] * u[None, :])  # (4, T)
    return (coef @ basis).T


def variable_length_multichannel(
    seed: int = 0,
    n_train: int = 270,
    n_test: int = 370,
    n_classes: int = 9,
    n_channels: int = 12,
) -> VariableLengthSet:
    """Like UEA JapaneseVowels: 12 channels, lengths 7 to 26 in train and 7 to 29 in test
    (about 5% of test longer than any train series, at least one of 29), 9 classes. A series
    is its class's smooth per-channel trajectory, time-warped, with a per-channel offset and
    noise. Train X is ``(N, 26, 12)``, test X ``(N, 29, 12)``."""
    rng = np.random.default_rng(seed)
    templates = _trajectory_templates(rng, n_classes, n_channels)
    y_train = balanced_labels(rng, n_train, n_classes)
    y_test = balanced_labels(rng, n_test, n_classes)
    len_train = rng.integers(7, 27, n_train)
    len_test = np.where(
        rng.random(n_test) < 0.05, rng.integers(27, 30, n_test), rng.integers(7, 27, n_test)
    )
    len_test[rng.integers(n_test)] = 29
    len_train[rng.integers(n_train)] = 26

    def make(y: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
        X = np.full((len(y), width, n_channels), np.nan)
        for i, (label, steps) in enumerate(zip(y, lengths, strict=True)):
            u = np.linspace(0.0, 1.0, steps) ** np.exp(rng.normal(0.0, 0.25))  # time warp
            curve = _evaluate(templates[label], u)
            offset = rng.normal(0.0, 0.3, (1, n_channels))
            X[i, :steps] = curve + offset + rng.normal(0.0, 0.5, (steps, n_channels))
        return X.astype(np.float32)

    return VariableLengthSet(
        make(y_train, len_train, 26),
        y_train,
        len_train.astype(np.int64),
        make(y_test, len_test, 29),
        y_test,
        len_test.astype(np.int64),
    )


def digits_rows(test_size: float = 0.25, seed: int = 0) -> SeriesSet:
    """scikit-learn's 8x8 digits read as 8 steps of 8 features (rows as time), with a fixed
    stratified split: X ``(N, 8, 8)`` float32, pixel values 0..16."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.images.astype(np.float32),
        digits.target.astype(np.int64),
        test_size=test_size,
        stratify=digits.target,
        random_state=seed,
    )
    return X_train, y_train, X_test, y_test


# --------------------------------------------------------------------------- baseline
def _as_3d(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X[..., None] if X.ndim == 2 else X


def znormalize(X: np.ndarray) -> np.ndarray:
    """Each series and channel to mean 0 and std 1 over its own steps (NaN padding ignored
    and kept); a constant channel becomes 0."""
    X = _as_3d(X)
    mean = np.nanmean(X, axis=1, keepdims=True)
    std = np.nanstd(X, axis=1, keepdims=True)
    return (X - mean) / np.where(std > 0, std, 1.0)


def one_nn_accuracy(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    znorm: bool = True,
) -> float:
    """Test accuracy of 1-nearest-neighbour with Euclidean distance over all steps and
    channels. ``znorm`` z-normalises each series (and channel) first, as the UCR archive's
    univariate reference numbers do (the UEA multivariate ones do not). Variable-length series
    (NaN after each length) are padded with 0, after any z-normalisation, to the longer of the
    train and test widths."""
    train, test = _as_3d(X_train), _as_3d(X_test)
    if znorm:
        train, test = znormalize(train), znormalize(test)
    width = max(train.shape[1], test.shape[1])
    train, test = (
        np.nan_to_num(np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0))), nan=0.0).reshape(
            len(a), -1
        )
        for a in (train, test)
    )
    # squared distances without the test-only term, which does not change the argmin
    dist = (train**2).sum(axis=1)[None, :] - 2.0 * test @ train.T
    predicted = np.asarray(y_train)[np.argmin(dist, axis=1)]
    return float(np.mean(predicted == np.asarray(y_test)))


# --------------------------------------------------------------------------- files
def write_tsv(path: Path, X: np.ndarray, y: np.ndarray) -> Path:
    """A UCR ``.tsv``: no header, label in column 0, then the values; NaN pads shorter series."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 3 and X.shape[2] == 1:
        X = X[..., 0]
    if X.ndim != 2:
        raise ValueError(f"a UCR .tsv holds univariate series (N, T), got shape {X.shape}")
    with Path(path).open("w") as handle:
        for label, row in zip(np.asarray(y), X, strict=True):
            values = "\t".join("NaN" if np.isnan(v) else f"{v:.9g}" for v in row)
            handle.write(f"{int(label)}\t{values}\n")
    return Path(path)


def write_npz(path: Path, X: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> Path:
    """An ``.npz`` with ``X`` (N, T, F), ``y``, optionally ``lengths``, and ``modality`` set to
    'sequence' (an 8x8 array without NaN would otherwise be read as images)."""
    arrays = {"X": np.asarray(X, dtype=np.float32), "y": np.asarray(y), "modality": "sequence"}
    if lengths is not None:
        arrays["lengths"] = np.asarray(lengths, dtype=np.int64)
    np.savez(path, **arrays)
    return Path(path)


def write_split(folder: Path, name: str, data: SeriesSet | VariableLengthSet) -> tuple[Path, Path]:
    """Write train and test to ``folder/NAME_TRAIN`` and ``NAME_TEST``: ``.tsv`` for univariate
    fixed-length series, ``.npz`` otherwise. Returns the (train, test) paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, VariableLengthSet):
        return (
            write_npz(folder / f"{name}_TRAIN.npz", data.X_train, data.y_train, data.lengths_train),
            write_npz(folder / f"{name}_TEST.npz", data.X_test, data.y_test, data.lengths_test),
        )
    X_train, y_train, X_test, y_test = data
    if X_train.ndim == 2:
        return (
            write_tsv(folder / f"{name}_TRAIN.tsv", X_train, y_train),
            write_tsv(folder / f"{name}_TEST.tsv", X_test, y_test),
        )
    return (
        write_npz(folder / f"{name}_TRAIN.npz", X_train, y_train),
        write_npz(folder / f"{name}_TEST.npz", X_test, y_test),
    )

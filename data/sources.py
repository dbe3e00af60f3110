"""Readers for every data source: builtins, CSV/Parquet tables, NPZ arrays, image folders, UCR."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from data.arrayfile import check_array_values, read_npz
from data.dataset import Dataset
from data.modality import RawData, check_modality, resolve_modality
from data.preprocessing import sequence_lengths
from data.tablefile import (
    EMPTY_RULE,
    check_text_file,
    not_utf8,
    read_table_file,
    separator,
    separator_hint,
)
from orchestrator.errors import DataError, did_you_mean

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SUPPORTED = ".csv, .tsv, .parquet, .npz, or a folder of class sub-folders of PNG/JPEG images"
PADDING = {"", "nan", "na"}  # cells that pad a shorter UCR series
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F"}


# --------------------------------------------------------------------------- builtins
def _digits() -> RawData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return RawData(
        bunch.images.astype(np.float32),
        bunch.target.astype(np.int64),
        "builtin:digits",
        class_names=[str(i) for i in range(10)],
    )


def _sklearn_table(name: str) -> Callable[[], RawData]:
    def load() -> RawData:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        X = bunch.data.reset_index(drop=True)
        names = getattr(bunch, "target_names", None)
        if name == "diabetes":
            return RawData(X, bunch.target.to_numpy(np.float64, copy=True), f"builtin:{name}")
        labels = np.asarray(names, dtype=object)[bunch.target.to_numpy()]
        return RawData(X, labels, f"builtin:{name}", class_names=[str(n) for n in names])

    return load


BUILTINS: dict[str, tuple[str, Callable[[], RawData]]] = {
    "digits": (
        "8x8 grayscale handwritten digits: 1797 images (8, 8, 1), 10-class classification",
        _digits,
    ),
    "breast_cancer": (
        "breast cancer diagnosis: table 569 x 30, 2-class classification",
        _sklearn_table("breast_cancer"),
    ),
    "wine": ("wine cultivars: table 178 x 13, 3-class classification", _sklearn_table("wine")),
    "iris": ("iris species: table 150 x 4, 3-class classification", _sklearn_table("iris")),
    "diabetes": (
        "diabetes progression: table 442 x 10, regression",
        _sklearn_table("diabetes"),
    ),
}


def list_builtin() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of each builtin dataset (use as ``builtin:NAME``)."""
    return [(name, desc) for name, (desc, _) in BUILTINS.items()]


def _builtin(name: str) -> RawData:
    if name not in BUILTINS:
        raise DataError(
            f"unknown builtin dataset '{name}'{did_you_mean(name, BUILTINS)}; "
            f"available: {', '.join(BUILTINS)}"
        )
    return BUILTINS[name][1]()


# --------------------------------------------------------------------------- tables
def _columns(columns: list[str]) -> str:
    return ", ".join(map(str, columns))


def _pop_column(frame: pd.DataFrame, name: str, what: str, path: Path) -> np.ndarray:
    if name not in frame.columns:
        raise DataError(
            f"{what} column '{name}' not found in {path}{did_you_mean(name, frame.columns)}; "
            f"columns: {_columns(list(frame.columns))}{separator_hint(path, list(frame.columns))}"
        )
    return frame.pop(name).to_numpy(copy=True)


def _table(frame: pd.DataFrame, path: Path, target: str | None, group: str | None) -> RawData:
    if target is None:
        raise DataError(
            f"{path} is a table: it requires --target; columns: {_columns(list(frame.columns))}"
        )
    frame = frame.copy()
    y = _pop_column(frame, target, "target", path)
    groups = _pop_column(frame, group, "group", path) if group else None
    if len(frame) == 0:
        raise DataError(f"{path} has a header but no data rows; {EMPTY_RULE}")
    if frame.shape[1] == 0:
        raise DataError(
            f"{path} has no feature columns: only the target '{target}'"
            f"{' and the group column' if group else ''}; a table needs at least one more column"
        )
    if pd.Series(y).isna().all():
        raise DataError(
            f"target column '{target}' of {path} is empty on all {len(y)} rows; every row to "
            "learn from needs a target value"
        )
    return RawData(frame, y, str(path), groups=groups)


def _read_rows(path: Path, sep: str) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [row for row in csv.reader(handle, delimiter=sep) if any(c.strip() for c in row)]


def _is_gap(cell: str) -> bool:
    return cell.strip().casefold() in PADDING


def _numeric_cells(cells: list[str]) -> bool:
    values = pd.to_numeric(pd.Series([c for c in cells if not _is_gap(c)]), errors="coerce")
    return bool(values.notna().all())


def _ucr(path: Path, rows: list[list[str]]) -> RawData:
    """Label in column 0, one series per row; NaN or empty cells pad the shorter series."""
    width = max(len(r) for r in rows)
    if width < 2:
        raise DataError(f"{path} has no series values: each row needs a label and values")
    grid = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            if not _is_gap(cell):
                grid[i, j] = float(cell.strip())
    labels, values = grid[:, 0], grid[:, 1:]
    present = ~np.isnan(values)
    values = values[:, : int(np.flatnonzero(present.any(axis=0)).max(initial=0)) + 1]
    y: np.ndarray = labels
    if not np.isnan(labels).any() and np.all(labels == np.round(labels)):
        y = labels.astype(np.int64)
    X = values[:, :, None].astype(np.float32)
    lengths = sequence_lengths(X)
    note = (
        f"UCR time-series file: label in column 0, {len(X)} series of up to {X.shape[1]} steps "
        f"(lengths {int(lengths.min())}..{int(lengths.max())})"
    )
    return RawData(X, y, str(path), lengths=lengths, declared="sequence", notes=[note])


def _text_file(path: Path, target: str | None, group: str | None) -> RawData:
    if target is not None:
        return _table(read_table_file(path), path, target, group)
    check_text_file(path)
    try:
        rows = _read_rows(path, separator(path))
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    if not rows:
        raise DataError(f"{path} is empty; {EMPTY_RULE}")
    if all(_numeric_cells(r) for r in rows):
        return _ucr(path, rows)
    header = _columns([c.strip() for c in rows[0]])
    raise DataError(f"{path} is a table: it requires --target; columns: {header}")


# --------------------------------------------------------------------------- arrays
def _npz(path: Path) -> RawData:
    arrays = read_npz(path)
    if "X" not in arrays or "y" not in arrays:
        raise DataError(f"{path} needs arrays 'X' and 'y'; found: {_columns(list(arrays))}")
    X, y = arrays["X"], arrays["y"]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise DataError(f"y must be 1-D, got shape {y.shape} (in {path})")
    if X.ndim not in (2, 3, 4):
        raise DataError(
            "X must be 2-D (table), 3-D (images or sequences) or 4-D (images), "
            f"got shape {X.shape} (in {path})"
        )
    if len(X) != len(y):
        raise DataError(
            f"X has shape {X.shape} but y has shape {y.shape}: they need the same number of "
            f"samples (in {path})"
        )
    check_array_values(X, "X", path)
    lengths = arrays.get("lengths")
    if lengths is not None and lengths.shape != (len(X),):
        raise DataError(
            f"lengths has shape {lengths.shape} but X has shape {X.shape}: need ({len(X)},) "
            f"(in {path})"
        )
    declared = None
    if "modality" in arrays:
        declared = str(np.asarray(arrays["modality"]).ravel()[0])
        if declared not in ("table", "image", "sequence"):
            raise DataError(
                f"the 'modality' entry of {path} must be table, image or sequence, got {declared!r}"
            )
    groups = arrays.get("groups")
    if groups is not None and groups.shape != (len(X),):
        raise DataError(f"groups has shape {groups.shape} but X has {len(X)} samples (in {path})")
    if y.dtype.kind in "US":
        y = y.astype(object)
    return RawData(X, y, str(path), lengths=lengths, groups=groups, declared=declared)


def _image_folder(path: Path) -> RawData:
    from PIL import Image, UnidentifiedImageError

    files: list[tuple[Path, str]] = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        files += [
            (f, folder.name)
            for f in sorted(folder.iterdir())
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        ]
    if not files:
        raise DataError(f"no PNG or JPEG images found in class sub-folders of {path}")
    images = []
    for file, _ in files:
        try:
            with Image.open(file) as img:
                img.load()
                images.append(img.copy())
        except (OSError, UnidentifiedImageError) as err:
            raise DataError(f"cannot read image {file}: {err}") from None
    modes = {img.mode for img in images}
    mode = "L" if modes <= GRAYSCALE_MODES else "RGB"
    size, _ = Counter(img.size for img in images).most_common(1)[0]
    resized = sum(img.size != size for img in images)
    arrays = [
        np.asarray(img.convert(mode).resize(size, Image.BILINEAR), dtype=np.float32)
        for img in images
    ]
    X = np.stack(arrays)
    if mode == "L":
        X = X[..., None]
    labels = np.asarray([label for _, label in files], dtype=object)
    classes = sorted(set(labels.tolist()))
    note = (
        f"image folder: {len(X)} images of {size[1]}x{size[0]} ({mode}) in {len(classes)} classes"
        + (f"; {resized} resized to the most common size" if resized else "")
        + (f"; modes {', '.join(sorted(modes))} converted to {mode}" if len(modes) > 1 else "")
    )
    return RawData(X, labels, str(path), class_names=classes, notes=[note])


# --------------------------------------------------------------------------- entry point
def load_dataset(
    source: str,
    target: str | None = None,
    modality: str = "auto",
    family: str = "auto",
    group_column: str | None = None,
) -> Dataset:
    """Load ``source`` (``builtin:NAME``, a file or an image folder) into a Dataset."""
    check_modality(modality)
    source = str(source)
    if source.startswith("builtin:"):
        raw = _builtin(source.removeprefix("builtin:"))
        if group_column:
            raise DataError("data.group_column is not available for builtin datasets")
        return resolve_modality(raw, modality, family)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data source not found: {path}")
    suffix = path.suffix.lower()
    if path.is_dir():
        raw = _image_folder(path)
    elif suffix in (".csv", ".tsv"):
        raw = _text_file(path, target, group_column)
    elif suffix in (".parquet", ".pq"):
        raw = _table(read_table_file(path), path, target, group_column)
    elif suffix == ".npz":
        raw = _npz(path)
    else:
        raise DataError(
            f"unsupported data format '{suffix or path.name}' for {path}; supported: {SUPPORTED}"
        )
    if group_column and not isinstance(raw.X, pd.DataFrame):
        raise DataError(f"data.group_column applies to tables; {path} is not a table")
    return resolve_modality(raw, modality, family)

"""Raw inputs for scoring: shaping and checking a request batch, reading a prediction file, and
the REST server's request-size limit (no MLflow here).

``serving.py`` wraps these for the pyfunc model, the REST server and ``automl predict``, and
``signature.py`` infers a model's signature from a prepared input example; the checks
raise :class:`~orchestrator.errors.DataError` with one line naming the problem, which the pyfunc
turns into an HTTP 400.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.errors import DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def raw_shape(preprocessor: Any, modality: str) -> tuple[int, ...] | None:
    """The per-sample shape of raw image/sequence input, as the preprocessor was fitted on."""
    if modality == "image":
        shape = getattr(preprocessor, "input_shape_", None)
        return tuple(int(d) for d in shape) if shape is not None else None
    if modality == "sequence":
        steps, feats = (
            getattr(preprocessor, "n_steps_", None),
            getattr(preprocessor, "n_features_", None),
        )
        return (int(steps), int(feats)) if steps is not None and feats is not None else None
    return None


def prepare_input(predictor: Any, model_input: Any) -> Any:
    """Turn what a pyfunc/REST caller sends into what :meth:`Predictor.predict` accepts.

    Tables take a DataFrame of raw rows (a dict or list of records becomes one). Images take
    arrays of the fitted shape, or flattened rows that are reshaped to ``(N, H, W, C)``.
    Sequences take ``(N, T, F)`` of any length ``T`` (NaN after each series' end), ``(N, T)``
    for one feature, flattened rows, or a list of series of different lengths.
    """
    if predictor.modality == "table":
        if isinstance(model_input, pd.DataFrame):
            return model_input
        if isinstance(model_input, dict):
            return pd.DataFrame(model_input)
        if isinstance(model_input, np.ndarray) and model_input.ndim == 2:
            columns = getattr(predictor.preprocessor, "columns_", None)
            if columns is not None and len(columns) == model_input.shape[1]:
                return pd.DataFrame(model_input, columns=columns)
        return pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        array = model_input.to_numpy(dtype=np.float32, na_value=np.nan)
    elif isinstance(model_input, dict) and len(model_input) == 1:
        array = _array(next(iter(model_input.values())))
    else:
        array = _array(model_input)
    shape = raw_shape(predictor.preprocessor, predictor.modality)
    if shape is None or array.shape[1:] == shape:
        return array
    if predictor.modality == "sequence":
        return _sequences(array, n_features=shape[1])
    size = int(np.prod(shape))
    if array.size % size:
        raise ValueError(
            f"{predictor.modality} input must have {size} values per sample (shape {shape}), "
            f"got an array of shape {array.shape}"
        )
    return array.reshape(-1, *shape)


def _array(values: Any) -> np.ndarray:
    """``values`` as float32; a list of sequences of different lengths is padded with NaN."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.astype(np.float32, copy=False)
    if isinstance(values, (list, tuple, np.ndarray)) and len(values):
        items = [np.asarray(v, dtype=np.float32) for v in values]
        if len({item.shape for item in items}) > 1 and all(item.ndim >= 1 for item in items):
            steps = max(item.shape[0] for item in items)
            rest = items[0].shape[1:]
            out = np.full((len(items), steps, *rest), np.nan, dtype=np.float32)
            for i, item in enumerate(items):
                if item.shape[1:] != rest:
                    raise ValueError(
                        f"sequence {i} has shape {item.shape}; every step needs the same "
                        f"features, {rest}"
                    )
                out[i, : item.shape[0]] = item
            return out
    return np.asarray(values, dtype=np.float32)


def _sequences(array: np.ndarray, n_features: int) -> np.ndarray:
    """Sequence input of any length as ``(N, T, F)``: ``(N, T, F)`` as is, ``(N, T)`` when there
    is one feature, flattened rows ``(N, T * F)`` otherwise, and one series ``(T,)``."""
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim == 2:
        if array.shape[1] % n_features:
            raise ValueError(
                f"sequence rows must hold T steps of {n_features} features (a multiple of "
                f"{n_features} values), got {array.shape[1]} values"
            )
        return array.reshape(array.shape[0], -1, n_features)
    return array


def _names(items: Any) -> str:
    return ", ".join(map(str, items))


def check_batch(predictor: Any, X: Any, extra: str = "error") -> None:
    """Raise DataError when ``X`` (after ``prepare_input``) cannot be scored by ``predictor``.

    Checks an empty batch, missing (and, with ``extra="error"``, unexpected) table columns, and the
    per-sample shape of image and sequence arrays.
    """
    if len(X) == 0:
        raise DataError("the batch is empty: send at least one row")
    if predictor.modality == "table":
        expected = list(getattr(predictor.preprocessor, "columns_", []) or [])
        if not expected or not isinstance(X, pd.DataFrame):
            return
        optional = set(getattr(predictor.preprocessor, "optional_columns_", ()))
        missing = [c for c in expected if c not in X.columns and c not in optional]
        if missing:
            raise DataError(
                f"missing column(s): {_names(missing)}; the model expects {_names(expected)}"
            )
        unexpected = [c for c in X.columns if c not in set(expected)]
        if unexpected and extra == "error":
            raise DataError(
                f"unexpected column(s): {_names(unexpected)}; the model expects {_names(expected)}"
            )
        return
    shape = raw_shape(predictor.preprocessor, predictor.modality)
    got = tuple(np.shape(X))
    if shape is None:
        return
    if predictor.modality == "image" and got[1:] != shape:
        raise DataError(f"image input must have shape (N, {_names(shape)}), got {got}")
    if predictor.modality == "sequence" and (len(got) != 3 or got[2] != shape[1] or got[1] < 1):
        raise DataError(
            f"sequence input must have shape (N, T, {shape[1]}) for any T >= 1, got {got}"
        )


# --------------------------------------------------------------------------- prediction files
def _read_table(path: Path) -> pd.DataFrame:
    from data.tablefile import read_table_file

    try:
        return read_table_file(path)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from None


def _table_rows(predictor: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's columns of ``frame``; others (a target column, ids) are ignored."""
    check_batch(predictor, frame, extra="ignore")
    expected = getattr(predictor.preprocessor, "columns_", None)
    return frame[[c for c in expected if c in frame.columns]] if expected else frame


def _npz(predictor: Any, path: Path) -> tuple[Any, np.ndarray | None]:
    from data.arrayfile import check_array_values, read_npz
    from data.modality import RawData, resolve_modality

    arrays = read_npz(path)
    if "X" not in arrays:
        raise DataError(f"{path} needs an array 'X'; found: {_names(arrays)}")
    X = arrays["X"]
    check_array_values(X, "X", path)
    raw = RawData(X, np.zeros(len(X)), str(path), lengths=arrays.get("lengths"))
    ds = resolve_modality(raw, predictor.modality, predictor.family)
    return ds.X, ds.lengths


def _image_files(folder: Path) -> list[Path]:
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(f"no PNG or JPEG images found in {folder} (or its sub-folders)")
    return files


def _images(predictor: Any, folder: Path) -> tuple[np.ndarray, list[str]]:
    """Images of the folder as ``(N, H, W, C)``, converted and resized to the model's input."""
    from PIL import Image, UnidentifiedImageError

    shape = raw_shape(predictor.preprocessor, "image")
    if predictor.modality != "image" or shape is None:
        raise DataError(
            f"{folder} is an image folder but the model reads {predictor.modality} input"
        )
    h, w, c = shape
    mode = "L" if c == 1 else "RGB"
    files = _image_files(folder)
    arrays = []
    for file in files:
        try:
            with Image.open(file) as img:
                pixels = img.convert(mode).resize((w, h), Image.BILINEAR)
                arrays.append(np.asarray(pixels, dtype=np.float32).reshape(h, w, -1))
        except (OSError, UnidentifiedImageError) as err:
            raise DataError(f"cannot read image {file}: {err}") from None
    return np.stack(arrays), [str(f.relative_to(folder)) for f in files]


def read_prediction_input(
    predictor: Any, data_path: str
) -> tuple[Any, np.ndarray | None, list[str] | None]:
    """``(X, lengths, names)`` of a raw prediction file, in the format the model was trained on.

    CSV/Parquet tables (the model's columns; a target column is ignored), NPZ with ``X`` and
    optional ``lengths``, UCR series files for sequence models, or a folder of images (``names``
    are then the image paths relative to the folder).
    """
    path = Path(data_path).expanduser()
    if not path.exists():
        raise DataError(f"prediction data not found: {path}")
    suffix = path.suffix.lower()
    if path.is_dir():
        images, names = _images(predictor, path)
        return images, None, names
    if suffix == ".npz":
        X, lengths = _npz(predictor, path)
        if predictor.modality == "table":
            X = _table_rows(predictor, X)
        return X, lengths, None
    if suffix in TABLE_SUFFIXES:
        if predictor.modality == "table":
            return _table_rows(predictor, _read_table(path)), None, None
        from data import load_dataset

        ds = load_dataset(str(path), modality=predictor.modality, family=predictor.family)
        return ds.X, ds.lengths, None
    raise DataError(
        f"unsupported prediction data '{suffix or path.name}' for {path}; supported: "
        ".csv, .tsv, .parquet, .npz or a folder of PNG/JPEG images"
    )


# --------------------------------------------------------------------------- request size
DEFAULT_MAX_BODY_MB = 10.0
MIB = 1 << 20
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 and a one-line JSON message.

    MLflow's scoring server reads any body whole into memory. A declared Content-Length is
    checked before anything is read (uvicorn then reads and drops the rest of the body, so the
    client, still sending, gets the answer rather than a reset connection); a chunked body is
    read up to the limit first and handed on whole, as the app would have read it anyway.
    (Starlette's ``RequestBodyLimitMiddleware`` answers a plain "Content Too Large", which names
    neither the limit nor how to change it.)
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                return await self._too_large(send, f" of {declared} bytes")
            return await self.app(scope, receive, send)
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._too_large(send, "")
            if not message.get("more_body", False):
                break
        read = iter(messages)

        async def replay() -> Message:
            return next(read, None) or await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, size: str) -> None:
        limit = f"{self.max_bytes / MIB:g} MiB"
        message = (
            f"request body{size} is over the server's limit of {limit} (--max-body-mb); "
            "send smaller batches"
        )
        body = json.dumps({"error_code": "REQUEST_TOO_LARGE", "message": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Message) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

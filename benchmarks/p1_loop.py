"""P1's hand-written contenders, the part they share: the table, the grid and the 5-fold loop.

What a user writes around Ray Tune or Optuna when no tool does it for them: read the CSV, hold
out a stratified 15% test split, and score one grid point by 5-fold CV on the rest, one fold after
another, with a ``StandardScaler`` fitted on each fold's training part and a plain PyTorch loop
(Adam, ReLU FNN, no early stopping). The score is the fold-mean validation accuracy after the
last epoch. Two styles of loop:

- ``docs``: as the PyTorch, Ray Tune and Optuna tutorials write it: shuffled mini-batches from a
  ``DataLoader`` over a ``TensorDataset``, and the validation loss and accuracy computed after
  every epoch (what the tutorials report each epoch; automl logs them too).
- ``lean``: a hand-tuned loop: shuffled mini-batches by tensor slicing, and validation once,
  after the last epoch. Uses no code of this project, so that it runs
unchanged against any checkout.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LRS = [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2]
HIDDEN_SIZES = [[64], [128, 64], [256, 128], [256, 256]]
FOLDS = 5
BATCH_SIZE = 128
TEST_SIZE = 0.15
TARGET = "target"
RESULT_KEY = "best_cv_accuracy"  # the key of the JSON line a contender prints last
STYLES = ("docs", "lean")


def parse_args(prog: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line both hand-written contenders take."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--data", required=True, help="CSV file with a 'target' column")
    parser.add_argument("--tracking-uri", required=True, help="MLflow store, e.g. sqlite:///m.db")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, nargs="+", default=LRS)
    parser.add_argument(
        "--hidden",
        nargs="+",
        default=[",".join(map(str, h)) for h in HIDDEN_SIZES],
        help="hidden sizes, one comma-separated list per option, e.g. 64 128,64",
    )
    parser.add_argument("--storage", default="ray_results", help="Ray Tune's results folder")
    parser.add_argument("--style", choices=STYLES, default="docs", help="the training loop")
    args = parser.parse_args(argv)
    args.hidden = [[int(w) for w in h.split(",")] for h in args.hidden]
    return args


def load_search_part(path: str | Path) -> tuple[Any, Any]:
    """The CSV's rows without the stratified 15% test split: X float32, y class indices."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(path)
    X = frame.drop(columns=TARGET).to_numpy(dtype=np.float32)
    _, y = np.unique(frame[TARGET].to_numpy(), return_inverse=True)
    X_search, _, y_search, _ = train_test_split(
        X, y.astype(np.int64), test_size=TEST_SIZE, stratify=y, random_state=0
    )
    return X_search, y_search


def mlp(n_in: int, hidden_sizes: Sequence[int], n_out: int):
    from torch import nn

    layers: list[Any] = []
    for width in hidden_sizes:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def fold_accuracy(
    X_train,
    y_train,
    X_val,
    y_val,
    n_classes: int,
    lr: float,
    hidden_sizes: Sequence[int],
    epochs: int,
    seed: int,
    style: str = "docs",
) -> float:
    """Train one fold from scratch; its validation accuracy after the last epoch."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_train)
    xtr = torch.from_numpy(scaler.transform(X_train).astype(np.float32))
    xva = torch.from_numpy(scaler.transform(X_val).astype(np.float32))
    ytr, yva = torch.from_numpy(y_train), torch.from_numpy(y_val)
    torch.manual_seed(seed)
    model = mlp(xtr.shape[1], hidden_sizes, n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(seed)
    if style == "lean":
        n = len(ytr)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(n, generator=shuffle)
            for start in range(0, n, BATCH_SIZE):
                idx = order[start : start + BATCH_SIZE]
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
                optimizer.step()
        return _accuracy(model, xva, yva)[1]
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(
        TensorDataset(xtr, ytr), batch_size=BATCH_SIZE, shuffle=True, generator=shuffle
    )
    accuracy = 0.0
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        _, accuracy = _accuracy(model, xva, yva)  # the epoch's validation loss and accuracy
    return accuracy


def _accuracy(model, x, y) -> tuple[float, float]:
    """Validation loss and accuracy."""
    import torch
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        logits = model(x)
        return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def cv_accuracy(
    X, y, lr: float, hidden_sizes: Sequence[int], epochs: int, style: str = "docs"
) -> float:
    """Fold-mean validation accuracy of one grid point under stratified 5-fold CV."""
    from sklearn.model_selection import StratifiedKFold

    n_classes = int(y.max()) + 1
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(X, y)
    accs = [
        fold_accuracy(
            X[tr], y[tr], X[va], y[va], n_classes, lr, hidden_sizes, epochs, seed=k, style=style
        )
        for k, (tr, va) in enumerate(folds)
    ]
    return sum(accs) / len(accs)


def print_result(best_cv_accuracy: float, **extra: Any) -> None:
    """The contender's answer, as the last line of its output."""
    print(json.dumps({RESULT_KEY: best_cv_accuracy, **extra}), flush=True)


def read_result(log_text: str) -> dict[str, Any]:
    """The last JSON line holding ``RESULT_KEY`` in a contender's output."""
    for line in reversed(log_text.splitlines()):
        line = line.strip()
        if line.startswith("{") and RESULT_KEY in line:
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON line with {RESULT_KEY!r} in the output")

"""Write the bad-input corpus of tests/test_bad_inputs.py into this folder (seeded: the same
bytes each time). Run ``python tests/data/bad/generate.py`` after changing a case here.

Each file is one thing a user may hand ``automl``; the test names what it must answer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
COLORS = ("red", "green", "blue")


def table(n: int, label=lambda i: "yes" if i % 2 else "no", header: str = "label") -> str:
    """A small clean table: two number columns, a colour and a label."""
    rows = [f"x1,x2,color,{header}"]
    for i in range(n):
        rows.append(f"{(i * 0.37) % 3:.2f},{(i * 1.7) % 5:.1f},{COLORS[i % 3]},{label(i)}")
    return "\n".join(rows) + "\n"


def body(text: str) -> str:
    return text.split("\n", 1)[1]


def write_tables(out: Path) -> None:
    texts = {
        "empty.csv": "",
        "blank_lines.csv": "\n\n  \n",
        "header_only.csv": "x1,x2,color,label\n",
        "ragged_rows.csv": table(6) + "1.0,2.0,red,yes,extra,cells\n" + body(table(4)),
        "target_all_missing.csv": table(12, label=lambda i: ""),
        "one_class.csv": table(12, label=lambda i: "yes"),
        "one_row.csv": "x1,x2,color,price\n1.0,2.0,red,3.5\n",
        # 2 folds of 2 rows: a fold trains on one row, with no early-stopping rows left
        "three_rows.csv": "x1,x2,price\n1.0,2.0,1.5\n3.0,4.0,2.5\n5.0,6.0,3.7\n",
        "inf_values.csv": table(10) + "inf,2.0,red,yes\n-inf,1.0,green,yes\n",
        "huge_values.csv": table(10) + "1e308,2.0,red,yes\n1e307,3.0,blue,no\n",
        "mixed_numbers_text.csv": "x1,mixed,label\n"
        + "".join(f"{i},{i if i % 8 else 'abc'},{'yes' if i % 2 else 'no'}\n" for i in range(24)),
        "duplicate_columns.csv": "x1,x1,color,label\n" + body(table(8)),
        "semicolons.csv": table(8).replace(",", ";"),
        "only_target.csv": "label\n" + "".join("yes\n" if i % 2 else "no\n" for i in range(12)),
        "small_class.csv": table(20, label=lambda i: "rare" if i < 3 else "yes" if i % 2 else "no"),
        "not_parquet.parquet": table(4),
        "unsupported.xlsx": "not really a spreadsheet\n",
    }
    for name, text in texts.items():
        (out / name).write_text(text)
    (out / "binary.csv").write_bytes(bytes(range(256)) * 2)
    (out / "utf16.csv").write_bytes(table(12).encode("utf-16"))
    latin = "x1,city,label\n1,Zürich,yes\n2,Genève,no\n3,Zürich,yes\n4,Genève,no\n"
    (out / "latin1.csv").write_bytes(latin.encode("latin-1"))


def write_arrays(out: Path, rng: np.random.Generator) -> None:
    np.savez(
        out / "npz_length_mismatch.npz",
        X=rng.normal(size=(10, 4)).astype(np.float32),
        y=np.arange(8) % 2,
    )
    np.savez(
        out / "npz_lengths_too_large.npz",
        X=rng.normal(size=(6, 5, 1)).astype(np.float32),
        y=np.arange(6) % 2,
        lengths=np.array([5, 5, 9, 3, 5, 5]),
    )
    np.savez(out / "npz_missing_y.npz", X=rng.normal(size=(6, 3)).astype(np.float32))
    np.savez(out / "npz_text_X.npz", X=np.array([["a", "b"]] * 6), y=np.arange(6) % 2)
    X = rng.normal(size=(8, 6, 3)).astype(np.float32)
    X[2, 1, 1] = np.inf
    np.savez(out / "npz_inf.npz", X=X, y=np.arange(8) % 2)
    (out / "npz_not_zip.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")


def _save(rng: np.random.Generator, path: Path, size: tuple[int, int], mode: str) -> None:
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels, "RGB").convert(mode).save(path)


def write_images(out: Path, rng: np.random.Generator) -> None:
    # mixed sizes (W, H) and modes, PNG and JPEG: read, converted and resized, with a note
    specs = {
        "cat": [(12, 12, "L"), (12, 12, "RGB"), (16, 10, "RGBA"), (12, 12, "L"), (12, 12, "RGB")],
        "dog": [(12, 12, "P"), (12, 12, "L"), (8, 20, "RGB"), (12, 12, "LA"), (12, 12, "I;16")],
    }
    for label, images in specs.items():
        folder = out / "images_mixed" / label
        folder.mkdir(parents=True, exist_ok=True)
        for i, (w, h, mode) in enumerate(images):
            _save(rng, folder / f"{i}.png", (w, h), mode)
        _save(rng, folder / "jpeg.jpg", (12, 12), "L")
    for label in ("cat", "dog"):
        folder = out / "images_corrupt" / label
        folder.mkdir(parents=True, exist_ok=True)
        _save(rng, folder / "0.png", (8, 8), "L")
    (out / "images_corrupt" / "cat" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (out / "images_empty" / "cat").mkdir(parents=True, exist_ok=True)
    (out / "images_empty" / "cat" / "notes.txt").write_text("no images here\n")


def write_configs(out: Path) -> None:
    texts = {
        "yaml_syntax.yaml": "training:\n  epochs: 3\n   batch_size: 8\n",
        "unknown_key.yaml": "training:\n  epocs: 3\n",
        "unknown_section.yaml": "trainig:\n  epochs: 3\n",
        "negative_lr.yaml": "training:\n  optimizer:\n    lr: -0.01\n",
        "not_a_mapping.yaml": "- training\n- epochs\n",
        "grid_continuous.yaml": "search:\n  algorithm: grid\n  space:\n"
        "    training.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}\n",
    }
    for name, text in texts.items():
        (out / name).write_text(text)


def main(out: Path = HERE) -> None:
    rng = np.random.default_rng(0)
    write_tables(out)
    write_arrays(out, rng)
    write_images(out, rng)
    write_configs(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)

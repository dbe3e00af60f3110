"""Reading a table file (CSV, TSV, Parquet) into a DataFrame, or one line saying why not.

A table file is UTF-8 text, comma-separated (``.csv``) or tab-separated (``.tsv``), with a header
row of distinct names and one field per column on every row; or a Parquet file. What is not
(an empty file, UTF-16 or other non-UTF-8 text, binary bytes, ragged rows, repeated names)
raises a :class:`~orchestrator.errors.DataError` naming the file, the problem and what is
allowed, instead of the parser's traceback.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from orchestrator.errors import DataError

TEXT_SUFFIXES = (".csv", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
SNIFF_BYTES = 65536  # the start of a file, read to tell text from binary before parsing it
UTF16_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
TABLE_RULE = "a header row and one field per column on every row"
EMPTY_RULE = "a table file needs a header row and data rows below it"
_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def separator(path: Path) -> str:
    """The field separator of a text table: a tab for ``.tsv``, else a comma."""
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _kind(path: Path) -> str:
    return "tab-separated" if separator(path) == "\t" else "comma-separated"


def _utf16_without_bom(head: bytes) -> bool:
    """ASCII text in UTF-16: every other byte is NUL, the ones between are not."""
    if len(head) < 8:
        return False
    for zeros, chars in ((head[1::2], head[0::2]), (head[0::2], head[1::2])):
        if zeros.count(0) > 0.9 * len(zeros) and chars.count(0) < 0.1 * len(chars):
            return True
    return False


def check_text_file(path: Path) -> None:
    """DataError when ``path`` is not UTF-8 text: UTF-16/32, binary bytes (looked for in its
    first 64 KB; invalid UTF-8 further on is found when it is read)."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(UTF16_BOMS) or _utf16_without_bom(head):
        raise DataError(
            f"{path} is UTF-16 text; table files must be UTF-8 (save it as 'CSV UTF-8')"
        )
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{path} is not a text file (a NUL byte at offset {nul}); a {path.suffix} file must "
            f"be {_kind(path)} UTF-8 text with {TABLE_RULE}"
        )


def not_utf8(path: Path) -> DataError:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        return DataError(
            f"{path} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); table "
            "files must be UTF-8: save it as UTF-8 ('CSV UTF-8')"
        )
    return DataError(f"{path} is not UTF-8 text; table files must be UTF-8")


def _parse_error(path: Path, err: Exception) -> DataError:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    ragged = _RAGGED.search(text)
    if ragged:
        want, line, saw = ragged.groups()
        return DataError(
            f"{path}: line {line} has {saw} fields but the header has {want}; every row needs "
            f"one field per column (quote a field that holds the separator)"
        )
    text = text.removeprefix("Error tokenizing data. C error: ")
    return DataError(f"{path} is not a valid {_kind(path)} table ({text}); it needs {TABLE_RULE}")


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle, delimiter=separator(path)), [])


def check_unique_columns(path: Path, names: list[str]) -> None:
    """DataError naming the columns of ``path`` that share a name."""
    repeated = [(n, k) for n, k in Counter(map(str, names)).items() if k > 1]
    if repeated:
        shown = ", ".join(f"'{n}' ({k} times)" for n, k in repeated[:5])
        raise DataError(
            f"{path} has duplicate column names: {shown}; every column needs its own name"
        )


def read_text_table(path: Path) -> pd.DataFrame:
    """A CSV/TSV file as pandas reads it, after checking it is a UTF-8 table."""
    check_text_file(path)
    try:
        frame = pd.read_csv(path, sep=separator(path))
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; {EMPTY_RULE}") from None
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except pd.errors.ParserError as err:
        raise _parse_error(path, err) from None
    check_unique_columns(path, _header(path))
    return frame


def read_parquet_table(path: Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame, or one line when it is not one."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        first = first.split(f"{path}': ", 1)[-1]  # pyarrow repeats the path
        raise DataError(
            f"cannot read {path} as Parquet ({first}); a {path.suffix} file must be Parquet, "
            "as pandas' to_parquet writes it"
        ) from None
    check_unique_columns(path, list(frame.columns))
    return frame


def read_table_file(path: Path) -> pd.DataFrame:
    """A ``.csv``/``.tsv``/``.parquet`` table file as a DataFrame (see the module's rules)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return read_parquet_table(path)
    return read_text_table(path)


def separator_hint(path: Path, columns: list) -> str:
    """A hint when the whole header reads as one column holding another separator."""
    if len(columns) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), (",", "commas"), ("|", "bars")):
            if sep != separator(path) and sep in str(columns[0]):
                return (
                    f" (the header reads as one column: is it separated by {name}? a .csv "
                    "file is read comma-separated, a .tsv tab-separated)"
                )
    return ""

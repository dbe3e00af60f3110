"""Per-column corrections of raw table cells, learned once and replayed on raw rows.

Cleaning learns them on the loaded table and the tabular preprocessor learns them again on its
training rows, so rows sent at inference (``"1,234"``, ``" RED"``) are corrected the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from orchestrator.errors import DataError

# the largest magnitude a model input holds (float32); beyond it a number is too large to use
FLOAT32_MAX = float(np.finfo(np.float32).max)
RANGE_RULE = (
    "numbers must be finite and within ±3.4e38 (float32); leave a value empty (NaN) when missing"
)
# a column of text is numeric when at least this share of its non-empty cells parse as numbers
NUMERIC_SHARE = 0.8
_THOUSANDS = r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?"


@dataclass
class ColumnCorrections:
    """Which columns are numeric and each text column's spelling map (key -> canonical)."""

    numeric_columns: list[str] = field(default_factory=list)
    category_maps: dict[str, dict[str, str]] = field(default_factory=dict)


def _is_number_column(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _stripped_text(s: pd.Series) -> pd.Series:
    """Non-missing cells as stripped strings (object dtype); empty strings become NaN."""
    out = s.astype(object).where(s.notna(), np.nan)
    mask = out.notna()
    present = out[mask].to_numpy()
    if pd.api.types.infer_dtype(present, skipna=False) == "string":
        codes, distinct = pd.factorize(present)  # strip each distinct string once
        out[mask] = np.asarray([str(v).strip() for v in distinct], dtype=object)[codes]
    else:
        # mixed cells (1, 1.0, True) compare equal but print differently: one at a time
        out[mask] = [str(v).strip() for v in present]
    return out.where(out != "", np.nan)


def _numbers_from_text(text: pd.Series) -> pd.Series:
    """Stripped text cells (``_stripped_text``) as float64, NaN where not a number."""
    mask = text.notna()
    codes, distinct = pd.factorize(text[mask].to_numpy())
    # parse each distinct string once; the same set of strings keeps to_numeric's inference
    values = pd.Series(distinct, dtype=object).astype(str)
    thousands = values.str.fullmatch(_THOUSANDS)
    values[thousands] = values[thousands].str.replace(",", "", regex=False)
    parsed = pd.to_numeric(values, errors="coerce").astype(np.float64).to_numpy()
    out = pd.Series(np.nan, index=text.index, dtype=np.float64)
    out[mask] = parsed[codes]
    return out


def parse_numbers(s: pd.Series) -> pd.Series:
    """Text cells as float64: whitespace and thousands separators removed, others NaN."""
    if _is_number_column(s):
        # nullable Int64/boolean columns hold pd.NA, which astype(float) refuses
        return pd.Series(s.to_numpy(dtype=np.float64, na_value=np.nan), index=s.index)
    return _numbers_from_text(_stripped_text(s))


def _canonical_map(text: pd.Series) -> dict[str, str]:
    """casefolded spelling -> its most common spelling (ties: alphabetical)."""
    counts = text.dropna().value_counts()
    best: dict[str, tuple[int, str]] = {}
    for spelling, count in counts.items():
        key = str(spelling).casefold()
        current = best.get(key)
        if current is None or (-count, spelling) < (-current[0], current[1]):
            best[key] = (int(count), str(spelling))
    return {key: spelling for key, (_, spelling) in best.items()}


def learn_corrections(frame: pd.DataFrame, fix_errors: bool = True) -> ColumnCorrections:
    """Decide the numeric columns (mostly-numeric text included when ``fix_errors``) and maps."""
    corrections = ColumnCorrections()
    for col in frame.columns:
        s = frame[col]
        if _is_number_column(s):
            corrections.numeric_columns.append(col)
            continue
        if not fix_errors:
            continue
        text = _stripped_text(s)
        present = int(text.notna().sum())
        parsed = int(_numbers_from_text(text).notna().sum())
        if present and parsed / present >= NUMERIC_SHARE:
            corrections.numeric_columns.append(col)
        else:
            corrections.category_maps[col] = _canonical_map(text)
    return corrections


def apply_corrections(
    frame: pd.DataFrame, corrections: ColumnCorrections, log: list[str] | None = None
) -> pd.DataFrame:
    """Return a corrected copy: numeric columns as float64, text columns as canonical strings.

    When ``log`` is given, one line per corrected column is appended to it.
    """
    out = frame.copy()
    numeric = set(corrections.numeric_columns)
    for col in frame.columns:
        s = frame[col]
        if col in numeric:
            values = parse_numbers(s)
            out[col] = values
            if log is not None and not _is_number_column(s):
                _log_numeric(col, s, values, log)
            continue
        text = _stripped_text(s)
        mapping = corrections.category_maps.get(col)
        if mapping is not None:
            mask = text.notna()
            codes, distinct = pd.factorize(text[mask].to_numpy())
            spellings = [mapping.get(v.casefold(), v) for v in distinct]
            text[mask] = np.asarray(spellings, dtype=object)[codes]
        out[col] = text.astype(object)
        if log is not None:
            before = s.astype(object).where(s.notna(), np.nan)
            changed = int((before.notna() & (before != text)).sum())
            if changed:
                log.append(f"column '{col}': {changed} category spellings unified (case/spaces)")
    return out


def _log_numeric(col: str, raw: pd.Series, values: pd.Series, log: list[str]) -> None:
    text = _stripped_text(raw)
    converted = int((text.notna() & values.notna()).sum())
    stray = text[text.notna() & values.isna()]
    if converted:
        log.append(f"column '{col}': {converted} numbers stored as text converted")
    if len(stray):
        tokens = ", ".join(repr(t) for t in sorted(set(stray))[:5])
        log.append(f"column '{col}': {len(stray)} non-numeric values ({tokens}) set to missing")


def check_number_range(frame: pd.DataFrame, columns: list, where: str = "") -> None:
    """DataError naming the first of ``columns`` (float64 after ``apply_corrections``) with a
    value that is infinite or beyond float32's range."""
    for col in columns:
        values = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = np.abs(values) > FLOAT32_MAX
        if bad.any():
            shown = ", ".join(sorted({repr(float(v)) for v in values[bad]})[:3])
            raise DataError(
                f"column '{col}'{where} has {int(bad.sum())} infinite or too large value(s) "
                f"({shown}); {RANGE_RULE}"
            )

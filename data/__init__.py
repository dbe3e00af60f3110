"""Loading, cleaning, splitting and preprocessing of datasets (knows nothing about models)."""

from data.augment import augment_images
from data.cleaning import CleaningReport, clean_dataset
from data.corrections import ColumnCorrections, apply_corrections, learn_corrections
from data.dataset import Dataset
from data.modality import resolve_modality
from data.preprocessing import (
    ImagePreprocessor,
    Preprocessor,
    SequencePreprocessor,
    TabularPreprocessor,
    fit_preprocessor,
    sequence_lengths,
)
from data.sources import list_builtin, load_dataset
from data.splitting import holdout_split, inner_split, make_folds
from data.tasks import TargetEncoder, detect_task, validate_target

__all__ = [
    "CleaningReport",
    "ColumnCorrections",
    "Dataset",
    "ImagePreprocessor",
    "Preprocessor",
    "SequencePreprocessor",
    "TabularPreprocessor",
    "TargetEncoder",
    "apply_corrections",
    "augment_images",
    "clean_dataset",
    "detect_task",
    "fit_preprocessor",
    "holdout_split",
    "inner_split",
    "learn_corrections",
    "list_builtin",
    "load_dataset",
    "make_folds",
    "resolve_modality",
    "sequence_lengths",
    "validate_target",
]

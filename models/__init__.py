"""PyTorch model families, the training loop and evaluation metrics.

Knows nothing about Ray, MLflow or ``data/``; see ARCHITECTURE.md.
"""

from models.engine import Trainer, predict
from models.fused import FusedTrainer, fusion_blocker
from models.losses import output_size
from models.metrics import compute_metrics, confusion_matrix, error_analysis, per_class_metrics
from models.registry import FAMILIES, build_model
from models.tensordata import TensorData, seed_everything

__all__ = [
    "FAMILIES",
    "FusedTrainer",
    "TensorData",
    "Trainer",
    "build_model",
    "compute_metrics",
    "confusion_matrix",
    "error_analysis",
    "fusion_blocker",
    "output_size",
    "per_class_metrics",
    "predict",
    "seed_everything",
]

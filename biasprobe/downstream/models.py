"""Moved to :mod:`biasprobe.backends.classifiers`; this module re-exports it for old imports."""

from biasprobe.backends.classifiers import ClassifierBackend as Classifier  # noqa: F401
from biasprobe.backends.classifiers import (  # noqa: F401
    HFClassifier,
    SentimentRunClassifier,
    check_tokenization,
    is_sentiment_run,
    load_classifier,
    positive_index,
)

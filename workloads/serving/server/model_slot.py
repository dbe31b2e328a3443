"""The model a server serves, once it is there: a new environment's service starts before any training run
has written its model, so it waits for it (live, not ready) instead of crashing until someone notices."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from modelplane.workloads.serving.server.classifier import Prediction, TextClassifier


class ModelNotLoadedError(RuntimeError):
    pass


class ModelSlot:
    """Filled once by the loader; `labels` is the list the app shows in the model's metadata."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self._classifier: TextClassifier | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._classifier is not None

    def fill(self, classifier: TextClassifier) -> None:
        with self._lock:
            self.labels[:] = list(classifier.labels)
            self._classifier = classifier

    def predict(self, texts: list[str]) -> Sequence[Prediction]:
        classifier = self._classifier
        if classifier is None:
            raise ModelNotLoadedError("the model is not loaded yet")
        return classifier.predict(texts)

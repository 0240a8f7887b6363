"""The engine's model slot: which separation model the engine uses, loaded off the audio path.

A load runs on its own "whamsah-model-loader" thread (building a model takes from a fraction of a
second to several seconds) and its result comes back to the controller thread as a `ModelLoaded`
command carrying the number of the request that started it. Only the newest request's result is
taken up: set_model("A") then set_model("B") ends with B, whichever load finishes first.

Threads: `request` and `accept` run on the controller thread; the loader thread only calls the
factory and posts its result; `snapshot` is called from any thread (under the slot's lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from whamsah_tray.engine.api import EngineCommand
from whamsah_tray.errors import ModelLoadingError


@dataclass(frozen=True)
class ModelLoaded(EngineCommand):
    """A load's result (the controller's own command, posted by the loader thread): the model, or
    None and why not."""

    model: Any
    error: str | None
    request: int


class ModelSlot:
    def __init__(self, factory: Callable[[str | None], Any] | None,
                 post: Callable[[ModelLoaded], None]) -> None:
        """factory(name) -> LoadedModel (default separation.load_model; tests pass an untrained
        model); it runs on the loader thread. post(result) hands a load's result to the
        controller thread."""
        self._factory = factory or load_model
        self._post = post
        self._lock = threading.Lock()  # name and error are read together by status snapshots
        self._request = 0  # numbers the loads
        self.model: Any = None  # the model in use (controller thread)
        self.name: str | None = None
        self.error: str | None = None
        self.loading = False  # a load is on its way
        self.requested = False  # loading starts with the first start() / play_file()

    def snapshot(self) -> tuple[str | None, str | None]:
        """(name, error) of the model in use, from any thread."""
        with self._lock:
            return self.name, self.error

    def request(self, name: str | None) -> None:
        """Starts loading `name` on the loader thread; its result arrives through `post`."""
        self.loading = self.requested = True
        self._request += 1
        request = self._request

        def load() -> None:
            try:
                model, error = self._factory(name), None
            except ModelLoadingError as failure:
                model, error = None, str(failure)
            except Exception as failure:  # torch and friends raise anything
                model, error = None, f"cannot load model '{name or 'default'}': {failure}"
            self._post(ModelLoaded(model, error, request))

        threading.Thread(target=load, name="whamsah-model-loader", daemon=True).start()

    def accept(self, loaded: ModelLoaded) -> bool:
        """Takes up a load's result unless a newer request is on its way (False: this load lost its
        purpose). A failed load keeps the model that works and records the error."""
        if loaded.request != self._request:
            return False
        self.loading = False
        with self._lock:
            if loaded.model is None:
                self.error = loaded.error
            else:
                self.model, self.name, self.error = loaded.model, loaded.model.info.name, None
        return True

    def can_change_key(self) -> bool:
        """Whether the model in use has the spectral path the key change rides on (key_shift.py);
        True without a model (nothing to warn about)."""
        if self.model is None:
            return True
        network = self.model.network
        path = network.inference_path() or network
        return hasattr(path, "stream_shifted")


def load_model(name: str | None) -> Any:
    """The default factory: an installed model by name (separation imported on first use)."""
    from whamsah_tray.separation import load_model as load

    return load(name)

"""Commands travel as typed objects: every command class has a handler in the controller (a renamed
or missing handler fails here, not in a user's session), unknown ones are refused when sent, and
the model slot takes up only the newest load.

No devices are opened: the controller is built and closed without start().
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import types

import pytest

from whamsah_tray.engine import api
from whamsah_tray.engine.api import EngineCommand


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_subclasses(sub)
    return found


@pytest.fixture
def controller():
    from whamsah_tray.engine.controller import EngineController

    engine = EngineController(model_factory=lambda name: types.SimpleNamespace(info=types.SimpleNamespace(name="x")))
    yield engine
    engine.close()


def test_every_command_of_the_api_has_a_handler(controller):
    """api.py's commands and the controller's own (model loaded, close, cable events) alike."""
    in_api = {cls for _, cls in inspect.getmembers(api, inspect.isclass)
              if issubclass(cls, EngineCommand) and cls is not EngineCommand}
    assert len(in_api) >= 15
    # The controller's modules are imported by now; a test's own command classes do not count.
    every = {cls for cls in all_subclasses(EngineCommand) if cls.__module__.startswith("whamsah_tray.")}
    assert in_api <= every
    missing = sorted(cls.__name__ for cls in every if cls not in controller._handlers)
    assert not missing, f"commands without a handler: {missing}"


def test_commands_are_frozen_values():
    for cls in all_subclasses(EngineCommand):
        assert dataclasses.is_dataclass(cls) and getattr(cls, "__dataclass_params__").frozen, cls.__name__


def test_a_command_class_without_a_handler_is_refused_when_sent(controller):
    @dataclasses.dataclass(frozen=True)
    class Unknown(EngineCommand):
        pass

    with pytest.raises(TypeError, match="Unknown"):
        controller.send(Unknown())


def test_levels_change_when_sent_and_the_event_follows_on_the_controller_thread(controller):
    events, seen = [], threading.Event()

    def on_event(event):
        if isinstance(event, api.LevelsChanged):
            events.append(event)
            seen.set()

    controller.subscribe(on_event)
    controller.send(api.SetLevels(vocals=400.0))
    assert controller.status.vocals == api.MAX_LEVEL_PERCENT  # at once, clamped
    assert seen.wait(5)
    assert events == [api.LevelsChanged(float(api.MAX_LEVEL_PERCENT), 100.0, False)]


def test_the_model_slot_takes_up_only_the_newest_request():
    from whamsah_tray.engine.model_slot import ModelLoaded, ModelSlot

    posted: list[ModelLoaded] = []
    done = threading.Semaphore(0)

    def post(loaded):
        posted.append(loaded)
        done.release()

    slot = ModelSlot(lambda name: types.SimpleNamespace(info=types.SimpleNamespace(name=name)), post)
    slot.request("first")
    slot.request("second")
    assert done.acquire(timeout=5) and done.acquire(timeout=5)
    by_name = {loaded.model.info.name: loaded for loaded in posted}
    assert not slot.accept(by_name["first"])  # a newer request is on its way
    assert slot.snapshot() == (None, None) and slot.loading
    assert slot.accept(by_name["second"])
    assert slot.snapshot() == ("second", None) and not slot.loading

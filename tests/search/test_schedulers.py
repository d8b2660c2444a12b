"""Scheduler behaviour Ray leaves to us: the built schedulers driven directly, with a fake controller.

A real sweep hits these orders only by timing (``test_searcher_conformance.py`` hung on one about once in ten
runs), so they are replayed here step by step.
"""

from __future__ import annotations

from typing import Any

from zsl_bench.search.schedulers import SCHEDULERS

EPOCHS = 3


class FakeController:
    """The one ``TuneController`` call a HyperBand scheduler makes itself: stopping a trial."""

    def __init__(self) -> None:
        self.stopped: list[Any] = []

    def stop_trial(self, trial: Any) -> None:
        from ray.tune.experiment import Trial

        self.stopped.append(trial)
        trial.set_status(Trial.TERMINATED)


def _result(epoch: int) -> dict[str, Any]:
    return {"training_iteration": epoch, "val/h": epoch / EPOCHS}


def _hyperband_with_two_running_trials() -> tuple[Any, FakeController, Any, Any]:
    """The registry's ``hyperband`` over ``EPOCHS`` epochs (one bracket for two trials) with trials ``a``, ``b``."""
    from ray.tune.experiment import Trial

    spec = SCHEDULERS.get("hyperband")
    scheduler = spec.build(spec.parse_options({}), None, EPOCHS, {}, False)
    scheduler.set_search_properties("val/h", "max")
    controller = FakeController()
    a, b = Trial("trainable", stub=True), Trial("trainable", stub=True)
    for trial in (a, b):
        scheduler.on_trial_add(controller, trial)
        trial.set_status(Trial.RUNNING)
    return scheduler, controller, a, b


def test_hyperband_stops_a_trial_paused_at_max_t_when_the_last_other_one_ends_with_its_final_result() -> None:
    """Trial ``a`` reaches ``max_t`` first and is paused for its bracket; ``b``'s final report arrives with its end
    (``on_trial_complete``, no ``on_trial_result``). ``a`` must be stopped, not left paused (a hung sweep)."""
    from ray.tune.experiment import Trial

    scheduler, controller, a, b = _hyperband_with_two_running_trials()
    actions = [scheduler.on_trial_result(controller, a, _result(e)) for e in range(1, EPOCHS + 1)]
    assert actions == ["CONTINUE", "CONTINUE", "PAUSE"]
    a.set_status(Trial.PAUSED)
    assert [scheduler.on_trial_result(controller, b, _result(e)) for e in range(1, EPOCHS)] == ["CONTINUE"] * 2
    b.set_status(Trial.TERMINATED)
    scheduler.on_trial_complete(controller, b, {**_result(EPOCHS), "done": True})
    assert controller.stopped == [a] and a.status == Trial.TERMINATED
    assert scheduler.choose_trial_to_run(controller) is None


def test_hyperband_still_pauses_and_stops_in_the_usual_order() -> None:
    """``b``'s final result arrives on its own: the bracket is processed there, ``a`` stopped once, ``b`` too."""
    from ray.tune.experiment import Trial

    scheduler, controller, a, b = _hyperband_with_two_running_trials()
    for epoch in range(1, EPOCHS + 1):
        scheduler.on_trial_result(controller, a, _result(epoch))
    a.set_status(Trial.PAUSED)
    actions = [scheduler.on_trial_result(controller, b, _result(e)) for e in range(1, EPOCHS + 1)]
    assert actions == ["CONTINUE", "CONTINUE", "STOP"]
    assert controller.stopped == [a]
    b.set_status(Trial.TERMINATED)
    scheduler.on_trial_complete(controller, b, _result(EPOCHS))
    assert controller.stopped == [a]

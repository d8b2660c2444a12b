"""Fixtures of the Mamba-family model tests (VMamba, Vim): official key lists, relative closeness, strict self-load.

``ref_file`` (the ../shared/ref files) comes from tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from zsl_bench.layers.checkpoints import load_official_checkpoint

REL_TOL = 1e-4  # max |error| / max |reference|: the golden-case tolerance (a chunked scan's, per ref README)


@pytest.fixture(scope="session")
def official_keys(ref_file) -> Callable[[str], list[tuple[str, list[int]]]]:
    """``official_keys("vim/vim_tiny_keys.txt")`` → the [(state-dict key, shape)] listed in that reference file
    (one ``key<TAB>[shape]`` line each, in the official model's order)."""

    def read(name: str) -> list[tuple[str, list[int]]]:
        lines = ref_file(name).read_text().splitlines()
        return [(key, json.loads(shape)) for key, shape in (line.split("\t") for line in lines)]

    return read


@pytest.fixture(scope="session")
def assert_rel_close() -> Callable[..., None]:
    """``assert_rel_close(actual, expected, tol=1e-4)``: same shape and max |actual − expected| / max |expected|
    ≤ tol."""

    def check(actual: torch.Tensor, expected: torch.Tensor, tol: float = REL_TOL) -> None:
        assert actual.shape == expected.shape
        err = ((actual.float() - expected).abs().max() / expected.abs().max()).item()
        assert err <= tol, f"relative error {err:.2e} > {tol:.0e}"

    return check


@pytest.fixture
def assert_self_load(tmp_path: Path) -> Callable[..., Path]:
    """``assert_self_load(model, fresh, x, **extra)``: ``model`` saved as an official ``{"model": state_dict,
    **extra}`` checkpoint loads strictly into ``fresh`` (no missing or unexpected keys), and both then give the same
    eval-mode output on x. Returns the checkpoint's path."""

    def check(model: torch.nn.Module, fresh: torch.nn.Module, x: torch.Tensor, **extra: object) -> Path:
        path = tmp_path / "self.pth"
        torch.save({"model": model.state_dict(), **extra}, path)
        result = load_official_checkpoint(fresh, path)  # strict=True
        assert not result.missing_keys and not result.unexpected_keys
        model.eval()
        fresh.eval()
        with torch.no_grad():
            torch.testing.assert_close(fresh(x), model(x))
        return path

    return check


@pytest.fixture
def one_thread():
    """For trials that run on one torch thread (cheaper than two for these small models): the process's thread
    count is restored afterwards. Yields the thread count to pass to the trial."""
    threads = torch.get_num_threads()
    yield 1
    torch.set_num_threads(threads)

"""``halton``: a quasi-random searcher — trial i takes the i-th point of the Halton sequence (Halton, 1960).

Plain random sampling leaves gaps and clumps in a handful of trials; the Halton sequence fills the unit cube
evenly from the first points on (dimension d uses the radical inverse in the d-th prime base). Each searched key is
one dimension, mapped onto its range: uniformly (on a log scale for ``log: true``), rounded for integers, binned
for choices. ``skip`` drops the first points (the all-zeros corner), ``scramble_seed`` shifts every dimension by a
seeded random offset (Cranley-Patterson rotation) so that two sweeps with other seeds try other points.

It is a Ray Tune :class:`~ray.tune.search.Searcher`, wrapped in zsl-bench's :class:`SearcherSpec` with typed
options; the ``zsl_bench.searchers`` entry point in ``pyproject.toml`` makes it ``sweep: {searcher: halton}``.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from zsl_bench.search.searchers import SearcherSpec, register_searcher

PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)


class HaltonOptions(BaseModel):
    """``sweep.searcher_options`` of ``halton``."""

    model_config = ConfigDict(extra="forbid")
    skip: int = Field(1, ge=0)  # leading points dropped (point 0 is the corner of the cube)
    scramble_seed: int | None = None  # None: the sweep's seed


def radical_inverse(index: int, base: int) -> float:
    """The ``index``-th Halton coordinate in ``base``: its base-``base`` digits mirrored behind the point."""
    value, scale = 0.0, 1.0 / base
    while index:
        index, digit = divmod(index, base)
        value += digit * scale
        scale /= base
    return value


def _place(domain: Any, u: float) -> Any:
    """A point ``u`` in [0, 1) of one Tune domain (Float, Integer or Categorical)."""
    from ray.tune.search.sample import Categorical, Integer, LogUniform

    if isinstance(domain, Categorical):
        return domain.categories[min(int(u * len(domain.categories)), len(domain.categories) - 1)]
    low, high = float(domain.lower), float(domain.upper)
    if isinstance(domain.get_sampler(), LogUniform):
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        value = low + u * (high - low)
    if isinstance(domain, Integer):  # Tune's integer upper bounds are exclusive
        return min(int(value), int(high) - 1)
    return value


class HaltonSearcher:
    """The Ray Tune searcher (built lazily so that importing this module does not import Ray)."""

    def __new__(cls, options: HaltonOptions, seed: int, metric: str, mode: str) -> Any:
        from ray.tune.search import Searcher

        class _Halton(Searcher):
            def __init__(self) -> None:
                super().__init__(metric=metric, mode=mode)
                self.domains: dict[str, Any] = {}
                self.next_index = options.skip
                rng = random.Random(seed if options.scramble_seed is None else options.scramble_seed)
                self.shift = [rng.random() for _ in PRIMES]

            def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
                self.domains = dict(config)
                if len(self.domains) > len(PRIMES):
                    raise ValueError(f"halton searches at most {len(PRIMES)} keys (got {len(self.domains)})")
                return True

            def suggest(self, trial_id: str) -> dict[str, Any]:
                index, self.next_index = self.next_index, self.next_index + 1
                point = {}
                for d, (key, domain) in enumerate(sorted(self.domains.items())):
                    u = (radical_inverse(index, PRIMES[d]) + self.shift[d]) % 1.0
                    point[key] = _place(domain, u)
                return point

            def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
                return None  # the sequence does not depend on results

        return _Halton()


def _build(options: HaltonOptions, settings: Any, ray_dir: Path, param_space: dict[str, Any]) -> Any:
    return HaltonSearcher(options, settings.seed, settings.metric, settings.mode)


HALTON = register_searcher(  # registering on import also serves `--plugin zsl_proto.searcher` (not installed)
    SearcherSpec(
        name="halton",
        build=_build,
        options=HaltonOptions,
        supports=frozenset({"float", "int", "choice"}),
        adaptive=True,  # a Ray Searcher (PBT, which evolves its own population, cannot take one)
        summary="quasi-random Halton points: evenly spread trials from the first few on",
    )
)

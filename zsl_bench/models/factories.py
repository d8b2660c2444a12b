"""Model factories that share options, declared once.

A family's factories (e.g. the six full-size baselines) take the same keyword options. Instead of repeating the
parameter list on every factory, the family writes it once as a *template* (a function that only declares
parameters and documents them) and each factory takes ``**options`` under :func:`shared_options`::

    def _head_options(*, scoring: Scoring = "dot", scale: float = 10.0) -> None:
        \"\"\"``scoring``: ...; ``scale``: ...\"\"\"

    @MODELS.register("resnet101_ale")
    @shared_options(_head_options)
    def resnet101_ale(
        num_attributes: int, image_size: int, *, pretrained: str | None = HUB, **options: Any
    ) -> ZslModel:
        return _assemble(resnet101_backbone(pretrained), num_attributes, **options)

``inspect.signature(resnet101_ale)`` then lists ``num_attributes, image_size, pretrained, scoring, scale``: the
explicit keyword parameters :func:`zsl_bench.models.build_model` validates user options against (and that
:func:`zsl_bench.models.dataset_options` looks at). Options are keyword-only, in the templates as in the factory
(``*,`` after ``num_attributes, image_size``), so that the merged signature keeps a valid parameter order.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def shared_options(*templates: Callable[..., Any]) -> Callable[[F], F]:
    """Decorator giving a factory the parameters of ``templates`` in place of its ``**options``.

    The factory's signature becomes its own named parameters, then each template's parameters in order; a named
    parameter of the factory that a template also declares takes the template's place (to change its default or
    annotation for this factory). Calls are checked against that signature (an unknown or missing argument is a
    ``TypeError``), defaults are filled in, and the template parameters reach the factory in ``options``.
    """

    def deco(factory: F) -> F:
        own = inspect.signature(factory)
        named = {n: p for n, p in own.parameters.items() if p.kind is not p.VAR_KEYWORD}
        if len(named) == len(own.parameters):
            raise TypeError(f"{factory.__name__} must take **options to receive the shared options")
        shared: dict[str, inspect.Parameter] = {}
        for template in templates:
            for name, param in inspect.signature(template).parameters.items():
                if name in shared:
                    raise TypeError(f"option {name!r} is declared by two templates of {factory.__name__}")
                shared[name] = named.get(name, param)
        leading = [p for n, p in named.items() if n not in shared]
        signature = own.replace(parameters=[*leading, *shared.values()])

        @functools.wraps(factory)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return factory(**bound.arguments)

        wrapper.__signature__ = signature  # type: ignore[attr-defined]  # what inspect.signature reports
        return wrapper  # type: ignore[return-value]

    return deco

"""The model extension point: a :class:`ModelFamily` declares what the engine needs to know about its models.

A family (ZeroMamba, DUET, the CNN/ViT baselines, the classic heads, or an outside package's method) declares once
what all its models share, and each model (*variant*) is one factory registered through the family::

    PROTO = ModelFamily(
        name="proto",
        tiny="proto_test",                                     # the CPU variant --smoke and the tests use
        transform=TransformSpec(resize=224, hflip=True),       # full-size input pipeline (ImageNet mean/std)
        tiny_transform=TransformSpec(resize=64, hflip=True, norm="symmetric"),
        backbone_split=True,                                   # forward_backbone/forward_head: feature cache works
    )

    @PROTO.variant("proto_test")
    def proto_test(num_attributes: int, image_size: int, *, hidden: int = 64, scale: float = 10.0) -> ZslModel: ...

The factory's keyword parameters *are* its options (keyword-only, after the fixed ``num_attributes, image_size``):
their annotations and defaults become a pydantic model (:attr:`ModelSpec.options`) that every config, space file
and ``--set model.options.X=…`` is checked against when it loads, with "did you mean" for a typo. The registry
entry is a :class:`ModelSpec`; nothing in the engine looks at a model's name or probes it with ``hasattr``.

Capabilities a family declares:

* ``inputs``: ``images``, or ``features`` (trains on precomputed feature vectors: ``data.features=res101``);
* ``backbone_split``: its models implement ``forward_backbone`` / ``forward_head`` / ``backbone_parameters`` /
  ``freeze_backbone``, so ``model.freeze_backbone=true`` and the feature cache work; ``head_options`` are the
  options that do not change the backbone's outputs (they stay out of the feature-cache key);
* ``needs``: what its factories want to know about the dataset they are trained on, filled in by the engine when
  the user leaves them unset — ``attribute_names`` (``"<dataset>:<root>"``), ``dataset`` (its name), ``data_root``.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from zsl_bench.data.transforms import TransformSpec
from zsl_bench.errors import UserError
from zsl_bench.registry import Registry, close_matches

InputKind = Literal["images", "features"]
DatasetNeed = Literal["attribute_names", "dataset", "data_root"]
Factory = Callable[..., Any]  # factory(num_attributes, image_size, **options) -> ZslModel

TINY_TRANSFORM = TransformSpec(resize=64, hflip=True, norm="symmetric")  # 64-px synthetic images, [-1, 1]
_FIXED = ("num_attributes", "image_size")  # what the engine passes every factory besides its options


class ModelOptions(BaseModel):
    """Base of every model's options: strict keys, arbitrary types allowed (a factory may take a tuple)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: its factory, typed options, input pipeline and declared capabilities."""

    name: str
    family: str
    factory: Factory
    options: type[ModelOptions]
    transform: TransformSpec
    tiny: str
    inputs: InputKind = "images"
    backbone_split: bool = False
    head_options: tuple[str, ...] = ()
    needs: tuple[DatasetNeed, ...] = ()

    def check_options(self, options: dict[str, Any], where: str = "model.options") -> dict[str, Any]:
        """``options`` validated against :attr:`options`: the values to call the factory with (only those given).

        Raises:
            UserError: an unknown key (with the closest valid one) or a value of the wrong type, in one line.
        """
        try:
            validated = self.options.model_validate(options)
        except ValidationError as exc:
            raise UserError(self._explain(exc, where)) from None
        return {key: getattr(validated, key) for key in options}

    def _explain(self, exc: ValidationError, where: str) -> str:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        if err["type"] == "extra_forbidden":
            known = sorted(self.options.model_fields)
            hint = close_matches(key, known, n=1)
            tail = f"did you mean {hint[0]!r}?" if hint else f"its options: {', '.join(known) or '(none)'}"
            return f"model {self.name!r} has no option {key!r} ({where}); {tail}"
        return f"model {self.name!r} option {key!r} ({where}): {err['msg']} (got {err.get('input')!r})"

    def transform_at(self, image_size: int | None) -> TransformSpec:
        """This model's pipeline, rescaled to ``image_size`` (None: its declared size)."""
        spec = self.transform
        return spec if image_size is None or image_size == spec.size else spec.at_size(image_size)

    def build(self, num_attributes: int, image_size: int, options: dict[str, Any]) -> Any:
        """Check ``options`` and call the factory."""
        return self.factory(num_attributes=num_attributes, image_size=image_size, **self.check_options(options))


@dataclass(frozen=True)
class ModelFamily:
    """What the models of one family share; :meth:`variant` registers each of its factories in :data:`MODELS`."""

    name: str
    tiny: str
    transform: TransformSpec
    tiny_transform: TransformSpec = TINY_TRANSFORM
    inputs: InputKind = "images"
    backbone_split: bool = False
    head_options: tuple[str, ...] = ()
    needs: tuple[DatasetNeed, ...] = ()
    registry: Registry[ModelSpec] | None = field(default=None, compare=False, repr=False)

    def variant(self, name: str, *, transform: TransformSpec | None = None) -> Callable[[Factory], Factory]:
        """Decorator: register ``factory`` as model ``name`` of this family (the tiny variant gets
        ``tiny_transform`` unless ``transform`` is given)."""

        def deco(factory: Factory) -> Factory:
            default = self.tiny_transform if name == self.tiny else self.transform
            spec = ModelSpec(
                name=name,
                family=self.name,
                factory=factory,
                options=options_model(name, factory),
                transform=transform or default,
                tiny=self.tiny,
                inputs=self.inputs,
                backbone_split=self.backbone_split,
                head_options=self.head_options,
                needs=self.needs,
            )
            (self.registry or _models()).add(name, spec, getattr(factory, "__module__", None))
            return factory

        return deco

    def with_transform(self, transform: TransformSpec) -> ModelFamily:
        """The same family with another full-size pipeline (e.g. a variant family on another backbone)."""
        return replace(self, transform=transform)


def _models() -> Registry[ModelSpec]:
    from zsl_bench.models import MODELS

    return MODELS


def options_model(name: str, factory: Factory) -> type[ModelOptions]:
    """A pydantic model of ``factory``'s keyword options (every parameter but ``num_attributes``/``image_size``):
    each option's annotation is its type (``Any`` where it has none), its default the field default."""
    fields: dict[str, Any] = {}
    hints = _annotations(factory)
    for pname, param in inspect.signature(factory).parameters.items():
        if pname in _FIXED or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        default = ... if param.default is param.empty else param.default
        fields[pname] = (hints.get(pname, Any), default)
    return create_model(f"{name}_options", __base__=ModelOptions, **fields)


def _annotations(factory: Factory) -> dict[str, Any]:
    """Parameter name → evaluated annotation (string annotations resolved in the factory's module)."""
    module = sys.modules.get(getattr(inspect.unwrap(factory), "__module__", ""), None)
    scope = {**vars(typing), **(vars(module) if module else {})}
    out = {}
    for pname, param in inspect.signature(factory).parameters.items():
        note = param.annotation
        if note is param.empty:
            continue
        if isinstance(note, str):
            try:
                note = eval(note, scope)  # an annotation of the factory's own module, never data
            except Exception:
                note = Any
        out[pname] = note
    return out

"""The model zoo: a registry of factories ``factory(num_attributes, image_size, **options) -> ZslModel``.

Entries are lazy, so importing this package does not import transformers; the module that owns a family
is imported on first use of one of its names.
"""

from zsl_bench.models.base import ZslModel
from zsl_bench.registry import Registry

MODELS: Registry = Registry("model")

_BASELINES = (  # zsl_bench/models/baselines.py: tiny test models, then ResNet-101, ViT-B/16, DeiT-B/16
    "resnet_test vit_test deit_test resnet101_ale resnet101_attn vit_b16_ale vit_b16_attn deit_b16_ale deit_b16_attn"
)
for _name in _BASELINES.split():
    MODELS.register_lazy(_name, "zsl_bench.models.baselines")

__all__ = ["MODELS", "ZslModel", "build_model"]


def build_model(name: str, num_attributes: int, image_size: int, **options: object) -> ZslModel:
    """Instantiate the registered model ``name``; unknown options are a one-line ``UserError``."""
    import inspect

    from zsl_bench.errors import UserError

    factory = MODELS.get(name)
    params = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(params))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        allowed = sorted(set(params) - {"num_attributes", "image_size"})
        raise UserError(f"model {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(allowed)}")
    return factory(num_attributes=num_attributes, image_size=image_size, **options)

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

_ZEROMAMBA = "zeromamba_test zeromamba_vmamba_s zeromamba_vmamba_b zeromamba_vim_s"  # zsl_bench/models/zeromamba.py
for _name in _ZEROMAMBA.split():
    MODELS.register_lazy(_name, "zsl_bench.models.zeromamba")

_DUET = "duet_test duet_deit_b duet_swin_b"  # zsl_bench/models/duet.py
for _name in _DUET.split():
    MODELS.register_lazy(_name, "zsl_bench.models.duet")

_CLASSIC = "eszsl ale devise sje eszsl_test ale_test devise_test sje_test"  # zsl_bench/models/classic.py (features)
for _name in _CLASSIC.split():
    MODELS.register_lazy(_name, "zsl_bench.models.classic")

__all__ = ["MODELS", "ZslModel", "build_model", "dataset_options"]


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


def dataset_options(name: str, dataset: str, root: str, options: dict[str, object]) -> dict[str, object]:
    """``options`` plus what model ``name`` wants to know about the dataset it is trained on, where the user left
    it unset: ``attribute_names`` (``"<dataset>:<root>"``, ZeroMamba's embedding source) and ``dataset`` /
    ``data_root`` (DUET's prompts). ``root`` should be absolute: trials run in other working directories."""
    import inspect

    params = inspect.signature(MODELS.get(name)).parameters
    derived = {"attribute_names": f"{dataset}:{root}", "dataset": dataset, "data_root": root}
    filled = dict(options)
    for key, value in derived.items():
        if key in params and options.get(key) is None:
            filled[key] = value
    return filled

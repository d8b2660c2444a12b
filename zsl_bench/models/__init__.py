"""The model zoo: a registry of :class:`~zsl_bench.models.family.ModelSpec` entries, one per model.

Entries are lazy, so importing this package does not import transformers; the module that owns a family is imported
on first use of one of its names. Outside packages add models through the ``zsl_bench.models`` entry-point group
(or ``--plugin MODULE``): see docs/extending.md.
"""

from zsl_bench.models.base import ZslModel
from zsl_bench.models.family import ModelFamily, ModelSpec
from zsl_bench.registry import Registry

MODELS: Registry[ModelSpec] = Registry("model", group="zsl_bench.models")

_LAZY = {
    # tiny test models, then ResNet-101, ViT-B/16, DeiT-B/16
    "zsl_bench.models.baselines": "resnet_test vit_test deit_test resnet101_ale resnet101_attn vit_b16_ale "
    "vit_b16_attn deit_b16_ale deit_b16_attn",
    "zsl_bench.models.zeromamba_factories": "zeromamba_test zeromamba_vmamba_s zeromamba_vmamba_b zeromamba_vim_s",
    "zsl_bench.models.duet_factories": "duet_test duet_deit_b duet_swin_b",
    "zsl_bench.models.classic": "eszsl ale devise sje eszsl_test ale_test devise_test sje_test",  # on features
}
for _module, _names in _LAZY.items():
    for _name in _names.split():
        MODELS.register_lazy(_name, _module)

__all__ = ["MODELS", "ModelFamily", "ModelSpec", "ZslModel", "build_model", "dataset_options"]


def build_model(name: str, num_attributes: int, image_size: int, **options: object) -> ZslModel:
    """Instantiate the registered model ``name``; an unknown or mistyped option is a one-line ``UserError``."""
    return MODELS.get(name).build(num_attributes, image_size, dict(options))


def dataset_options(name: str, dataset: str, root: str, options: dict[str, object]) -> dict[str, object]:
    """``options`` plus what model ``name`` declares it needs to know about the dataset it is trained on
    (:attr:`ModelSpec.needs`), where the user left it unset: ``attribute_names`` (``"<dataset>:<root>"``),
    ``dataset``, ``data_root``. ``root`` should be absolute: trials run in other working directories."""
    derived = {"attribute_names": f"{dataset}:{root}", "dataset": dataset, "data_root": root}
    filled = dict(options)
    for key in MODELS.get(name).needs:
        if options.get(key) is None:
            filled[key] = derived[key]
    return filled

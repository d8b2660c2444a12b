import pytest

from zsl_bench.errors import UserError
from zsl_bench.registry import Registry


def test_register_get_and_names():
    reg: Registry = Registry("widget")

    @reg.register()
    def alpha():
        return 1

    reg.register("beta_two")(lambda: 2)
    assert reg.get("alpha") is alpha
    assert reg.names() == ["alpha", "beta_two"]
    assert reg.names("b*") == ["beta_two"]
    assert "alpha" in reg and "gamma" not in reg


def test_unknown_name_lists_close_matches():
    reg: Registry = Registry("widget")
    reg.register("resnet_test")(object)
    reg.register("vit_test")(object)
    with pytest.raises(UserError, match=r"unknown widget 'resnet_tst'; did you mean 'resnet_test'"):
        reg.get("resnet_tst")
    with pytest.raises(UserError, match="known widgets: resnet_test, vit_test"):
        reg.get("zzz")


def test_duplicate_registration_is_an_error():
    reg: Registry = Registry("widget")
    reg.register("a")(object)
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(object)


def test_lazy_entries_import_their_module_on_first_use():
    import sys

    from zsl_bench.models import MODELS

    assert "resnet_test" in MODELS.names()
    factory = MODELS.get("resnet_test")
    assert callable(factory)
    assert "zsl_bench.models.baselines" in sys.modules

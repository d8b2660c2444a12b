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
    spec = MODELS.get("resnet_test")
    assert callable(spec.factory) and spec.family == "resnet"
    assert "zsl_bench.models.baselines" in sys.modules


def _fake_distribution(root, dist: str, group: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """A real installed-looking distribution on ``root`` (a sys.path entry): dist-info with entry points + modules."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    for name, text in modules.items():
        (root / f"{name}.py").write_text(text)


def test_entry_points_are_discovered_lazily_with_their_provider(tmp_path, monkeypatch):
    modules = {"zsl_widgets_mod": "GIZMO = object()\n"}
    _fake_distribution(tmp_path, "zsl-widgets", "zsl_bench.tests_widgets", {"gizmo": "zsl_widgets_mod:GIZMO"}, modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("widget", group="zsl_bench.tests_widgets")
    reg.register("builtin")(object)
    assert reg.get("builtin") is object and not reg._discovered  # a built-in name needs no discovery
    import zsl_widgets_mod  # type: ignore[import-not-found]

    assert reg.get("gizmo") is zsl_widgets_mod.GIZMO  # an object: registered under its entry point's name
    assert reg.names() == ["builtin", "gizmo"]
    assert reg.provider("gizmo").distribution == "zsl-widgets" and reg.provider("gizmo").version == "1.2.3"
    assert reg.provider("builtin").distribution == "zsl-bench"


def test_a_broken_entry_point_is_one_line(tmp_path, monkeypatch):
    _fake_distribution(
        tmp_path,
        "zsl-broken",
        "zsl_bench.tests_broken",
        {"x": "zsl_broken_mod:X"},
        {"zsl_broken_mod": "raise RuntimeError('boom')\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("widget", group="zsl_bench.tests_broken")
    with pytest.raises(UserError, match=r"plugin zsl-broken: entry point x = zsl_broken_mod:X .*RuntimeError: boom"):
        reg.get("x")


def test_env_plugin_modules_are_imported_on_a_miss_and_clash_with_builtins(tmp_path, monkeypatch):
    (tmp_path / "zsl_env_plugin.py").write_text(
        "from zsl_bench.models import MODELS\n"
        "from zsl_bench.models.baselines import RESNET\n"
        "RESNET.variant('env_plugin_test')(MODELS.get('resnet_test').factory)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ZSL_BENCH_PLUGINS", "zsl_env_plugin")
    from zsl_bench.models import MODELS

    MODELS._discovered = False  # this process looked names up before the variable was set
    assert MODELS.get("env_plugin_test").family == "resnet"
    assert MODELS.provider("env_plugin_test").distribution == "module:zsl_env_plugin"
    with pytest.raises(UserError, match=r"model 'resnet_test' from module:x is already registered by zsl-bench"):
        from zsl_bench.registry import Provider, providing

        with providing(Provider("module:x")):
            MODELS.add("resnet_test", MODELS.get("resnet_test"))


def test_missing_env_plugin_module_is_one_line(monkeypatch):
    monkeypatch.setenv("ZSL_BENCH_PLUGINS", "no_such_zsl_plugin_module")
    reg: Registry = Registry("widget")
    with pytest.raises(UserError, match=r"plugin module 'no_such_zsl_plugin_module' .* failed to import"):
        reg.get("anything")


def test_other_threads_see_a_lazy_module_only_once_it_has_finished_importing(tmp_path, monkeypatch):
    """A lazy module registers its entries before it has finished executing; a second thread looking one up in
    between waits for the import to finish instead of taking a half-made module's entry."""
    import sys
    import threading

    (tmp_path / "zsl_lazy_holder.py").write_text(
        "import threading\nfrom zsl_bench.registry import Registry\n"
        "REG = Registry('widget')\nREG.register_lazy('slow', 'zsl_lazy_slow')\nADDED = threading.Event()\n"
    )
    (tmp_path / "zsl_lazy_slow.py").write_text(
        "import time\nfrom zsl_lazy_holder import ADDED, REG\n"
        "REG.add('slow', object())\nADDED.set()\ntime.sleep(0.3)\nFINISHED = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import zsl_lazy_holder

    seen = {}

    def second() -> None:
        zsl_lazy_holder.ADDED.wait(5)
        zsl_lazy_holder.REG.get("slow")
        seen["finished"] = getattr(sys.modules["zsl_lazy_slow"], "FINISHED", False)

    thread = threading.Thread(target=second)
    thread.start()
    first = zsl_lazy_holder.REG.get("slow")
    thread.join()
    for name in ("zsl_lazy_holder", "zsl_lazy_slow"):
        sys.modules.pop(name, None)
    assert seen == {"finished": True} and zsl_lazy_holder.REG.get("slow") is first

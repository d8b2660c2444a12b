"""The search spaces shipped in the package (``zsl_bench/spaces/*.yaml``) and how ``--space`` finds a file.

``--space ARG`` is a path first (as given, relative to the current directory); when no such file exists and ARG
is a bare name (``zeromamba_cub.yaml`` or ``zeromamba_cub``), it names a shipped space. Anything else is one
``UserError`` line with the closest shipped names. Nothing here imports torch or ray: ``zsl-bench spaces list``
reads the YAML files directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_bench.errors import UserError
from zsl_bench.registry import close_matches

SPACES_DIR = Path(__file__).resolve().parents[1] / "spaces"
_SUFFIXES = (".yaml", ".yml")


def shipped_spaces() -> list[Path]:
    """Every shipped space file, sorted by name."""
    return sorted(SPACES_DIR.glob("*.yaml"))


def shipped_names() -> list[str]:
    """The names of the shipped spaces, without suffix (``quickstart``, ``zeromamba_cub``, …)."""
    return [p.stem for p in shipped_spaces()]


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is one of the shipped space files."""
    return Path(path).resolve().parent == SPACES_DIR


def resolve_space(arg: str | Path) -> Path:
    """The space file ``--space arg`` means: the path as given if it is a file, else a shipped space by name.

    Returns the path as given for a file of the user, the absolute path of the shipped file otherwise.
    """
    path = Path(arg).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise UserError(f"--space {arg}: is a directory, not a search-space file; give a YAML file in it")
    shipped = _shipped_by_name(str(arg))
    if shipped is not None:
        return shipped
    raise UserError(_not_found(str(arg)))


def _bare_name(arg: str) -> str | None:
    """``arg`` without its YAML suffix when it is a bare file name (no directory part), else None."""
    if not arg or Path(arg).name != arg or arg in (".", ".."):
        return None
    for suffix in _SUFFIXES:
        if arg.endswith(suffix):
            return arg[: -len(suffix)]
    return arg


def _shipped_by_name(arg: str) -> Path | None:
    name = _bare_name(arg)
    if name is None:
        return None
    candidate = SPACES_DIR / f"{name}.yaml"
    return candidate if candidate.is_file() else None


def _not_found(arg: str) -> str:
    """One line: the file is missing here, it is no shipped name, and the closest shipped names."""
    names = shipped_names()
    stem = Path(arg).name
    for suffix in _SUFFIXES:
        stem = stem.removesuffix(suffix)
    hint = close_matches(stem, names)
    where = "no such file" if _bare_name(arg) is None else "no such file here and no shipped space of that name"
    if hint:
        tail = f"did you mean {', '.join(f'{h}.yaml' for h in hint)}?"
    else:
        tail = f"shipped spaces: {', '.join(names) or '(none)'}"
    return f"search-space file not found: {arg} ({where}); {tail} (`zsl-bench spaces list` shows them)"


@dataclass(frozen=True)
class SpaceSummary:
    """One line of ``zsl-bench spaces list``."""

    name: str
    model: str
    dataset: str
    searcher: str
    scheduler: str
    num_samples: int | str

    def cells(self) -> tuple[str, ...]:
        """The table cells, in column order."""
        return (
            self.name,
            self.model,
            self.dataset,
            f"{self.searcher}/{self.scheduler}",
            str(self.num_samples),
        )


def summarize(path: Path) -> SpaceSummary:
    """Name, model(s), dataset, searcher/scheduler and sample count of a space file, read from its YAML alone.

    The model and dataset come from the space (a ``space`` choice, then ``set``), else from its base preset.
    """
    from zsl_bench.config import read_yaml

    raw = read_yaml(path, "search-space file")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a search-space file is a mapping with base, sweep and space")
    sweep = raw.get("sweep") or {}
    defaults = _sweep_defaults()
    return SpaceSummary(
        name=path.stem,
        model=_effective(raw, path, "model.name"),
        dataset=_effective(raw, path, "data.name"),
        searcher=str(sweep.get("searcher", defaults["searcher"])),
        scheduler=str(sweep.get("scheduler", defaults["scheduler"])),
        num_samples=sweep.get("num_samples", defaults["num_samples"]),
    )


def _sweep_defaults() -> dict[str, Any]:
    """The ``sweep:`` defaults a space file leaves out, read from the schema (no plugin is looked up)."""
    from zsl_bench.search.space import SweepSettings

    fields = SweepSettings.model_fields
    return {key: fields[key].default if key in fields else "?" for key in ("searcher", "scheduler", "num_samples")}


def _effective(raw: dict[str, Any], path: Path, key: str) -> str:
    """The value of dotted ``key`` a space gives its trials: its choices (``a|b``), its ``set``, or its base's."""
    param = (raw.get("space") or {}).get(key)
    if isinstance(param, dict) and param.get("values"):
        return "|".join(str(v) for v in param["values"])
    fixed = raw.get("set") or {}
    if key in fixed:
        return str(fixed[key])
    return _base_value(raw.get("base"), path, key)


def _base_value(base: Any, path: Path, key: str) -> str:
    """Dotted ``key`` of the space's base (a preset name, or a YAML path beside the space file or the cwd)."""
    from zsl_bench.config import read_yaml, resolve_base

    if not isinstance(base, str):
        return "?"
    beside = path.parent / base
    tree = read_yaml(beside if beside.is_file() else resolve_base(base), "base config")
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return "?"
        tree = tree[part]
    return str(tree)


def table(summaries: list[SpaceSummary]) -> list[str]:
    """Aligned lines: a header, then one line per space."""
    rows = [("NAME", "MODEL", "DATASET", "SEARCHER/SCHEDULER", "SAMPLES"), *(s.cells() for s in summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip() for r in rows]

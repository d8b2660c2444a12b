"""Bounded YAML loading: every YAML file zsl-bench reads goes through :func:`load_file` (or :func:`load_text`).

``yaml.safe_load`` constructs no objects, but it still trusts the size of what it builds: a few hundred bytes
of nested aliases (a "billion laughs" document) stand for 10⁸ nodes that validation, ``deepcopy`` or a YAML
dump then expand, and 10,000 nested brackets end in a ``RecursionError``. Here a document is composed first
(its node graph, aliases shared) and refused before construction when

* the file is larger than :data:`MAX_BYTES` or is not UTF-8 text;
* it nests deeper than :data:`MAX_DEPTH` levels, in its text or once its aliases are followed;
* it would hold more than :data:`MAX_NODES` nodes once every alias is expanded, or an alias refers to itself.

Each refusal, and any YAML syntax error, is one :class:`YamlError` line naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from zsl_bench.errors import UserError

MAX_BYTES = 2 * 1024 * 1024  # config, space, preset and reference files are a few kB
MAX_NODES = 200_000  # scalars, lists and mappings after alias expansion
MAX_DEPTH = 64  # nesting levels


class YamlError(UserError, ValueError):
    """A YAML file that cannot be read safely; also a ``ValueError`` for readers that treat it as bad data.
    ``reason`` is the message without the file's name."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class _Refused(Exception):
    """Internal: a bound was exceeded (the message says which)."""


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that stops composing past :data:`MAX_DEPTH` nested nodes (PyYAML composes recursively)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose one node, counting how deep the text nests."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_file(path: str | Path, what: str = "YAML file") -> Any:
    """The YAML document in ``path`` (None when empty), within the bounds above; ``YamlError`` otherwise."""
    path = Path(path)
    text = _read_text(path, what)
    try:
        return _load(text)
    except _Refused as exc:
        raise YamlError(f"{what} {path} refused: {exc} (check the file)", str(exc)) from None
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, path) from None


def load_text(text: str, source: str) -> Any:
    """The YAML document in ``text`` (e.g. a ``--set`` value), within the same bounds. A bound exceeded is a
    ``YamlError`` naming ``source``; a syntax error is raised as PyYAML's ``yaml.YAMLError``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError(f"{source} refused: longer than {MAX_BYTES} bytes")
    try:
        return _load(text)
    except _Refused as exc:
        raise YamlError(f"{source} refused: {exc}") from None


def _read_text(path: Path, what: str) -> str:
    """The file as text: at most :data:`MAX_BYTES`, strict UTF-8 (a byte-order mark is allowed)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlError(f"cannot read {what} {path}: {exc.strerror} (check the path)", exc.strerror) from None
    if len(data) > MAX_BYTES:
        reason = f"larger than {MAX_BYTES} bytes"
        raise YamlError(f"{what} {path} is {reason}; is it the right file?", reason)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise YamlError(f"{what} {path} is {reason}; save it as UTF-8", reason) from None


def _load(text: str) -> Any:
    """Compose, measure, then construct the single document of ``text``."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(root: yaml.Node) -> None:
    """Raise ``_Refused`` when the graph under ``root``, every alias expanded, has more than :data:`MAX_NODES`
    nodes, is deeper than :data:`MAX_DEPTH`, or has a cycle. Iterative, and each shared node is sized once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_NODES:
                raise _Refused(f"expands to more than {MAX_NODES} nodes through its aliases (an alias bomb?)")
            if depth[key] > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep once its aliases are followed")
        elif key in open_nodes:
            raise _Refused("an alias refers to a node that contains it")
        elif key not in size:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((kid, False) for kid in _children(node) if id(kid) not in size)


def _syntax_error(exc: yaml.YAMLError, path: Path) -> YamlError:
    """One line for a PyYAML error: the problem and where it is."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return YamlError(f"malformed YAML in {path}: {problem} (fix the syntax there)", problem)
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    message = f"malformed YAML in {path}:{mark.line + 1}:{mark.column + 1}: {problem} (fix the syntax there)"
    return YamlError(message, f"{problem} at {where}")

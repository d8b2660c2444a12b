"""Size limits of the code style (issue 22): modules <= 400 lines, functions <= 60 lines, <= 5 positional parameters.

Usage: python tools/style_check.py [paths...]   (default: zsl_bench). Prints one line per finding; exit 1 if any.
Generated code and data tables are listed in EXEMPT with the reason. Two kinds of function are exempt from the
positional-parameter limit by rule, because their callers can only pass arguments positionally: Triton kernels
(``@triton.jit``: the launch grid passes every pointer and stride) and ``torch.autograd.Function`` ``forward`` /
``backward`` (``Function.apply`` takes no keywords).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_POSITIONAL = 5
EXEMPT: dict[str, str] = {}  # "path/to/module.py": "why it may exceed the limits"


def positional_count(args: ast.arguments, is_method: bool) -> int:
    """Positional parameters a caller may pass, not counting ``self``/``cls`` of a method."""
    count = len(args.posonlyargs) + len(args.args)
    return count - 1 if is_method and count else count


def _decorated(node: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    """Whether ``node`` has a decorator whose dotted name ends with ``name``."""
    return any(ast.unparse(d).split("(")[0].endswith(name) for d in node.decorator_list)


def _positional_exempt(node: ast.FunctionDef | ast.AsyncFunctionDef, autograd: set[int]) -> bool:
    """Triton kernels and autograd Function forward/backward: see the module docstring."""
    return _decorated(node, "jit") or id(node) in autograd


def _autograd_methods(tree: ast.Module) -> set[int]:
    """ids of forward/backward defined in classes deriving from ``...Function``."""
    out = set()
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef) and any(ast.unparse(b).endswith("Function") for b in cls.bases):
            out |= {id(f) for f in cls.body if isinstance(f, ast.FunctionDef) and f.name in ("forward", "backward")}
    return out


def findings(path: Path) -> list[str]:
    """Every limit ``path`` exceeds, as ``path:line: what`` lines."""
    text = path.read_text()
    out = []
    lines = text.count("\n") + 1
    if lines > MAX_MODULE_LINES:
        out.append(f"{path}:1: module has {lines} lines (max {MAX_MODULE_LINES})")
    tree = ast.parse(text)
    autograd = _autograd_methods(tree)
    methods = {id(fn) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) for fn in cls.body}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            out.append(f"{path}:{node.lineno}: {node.name} has {length} lines (max {MAX_FUNCTION_LINES})")
        is_method = id(node) in methods and not any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list
        )
        count = positional_count(node.args, is_method)
        if count > MAX_POSITIONAL and not _positional_exempt(node, autograd):
            out.append(f"{path}:{node.lineno}: {node.name} takes {count} positional parameters (max {MAX_POSITIONAL})")
    return out


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path("zsl_bench")]
    files = sorted(p for r in roots for p in ([r] if r.is_file() else r.rglob("*.py")))
    found = [f for p in files if p.as_posix() not in EXEMPT for f in findings(p)]
    print("\n".join(found) if found else f"style limits hold in {len(files)} files")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

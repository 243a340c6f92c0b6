"""The package's floors: commands -> recipes -> components, imports one way; no file over 800 lines.

Recipes (`rlhf_asr.recipes`) orchestrate; they may import components but no command and no other
recipe. Components (everything else but the CLI) never import a recipe or a command. Imports
inside functions count too: a lazy import is still a dependency.

The line cap is generous on purpose: a concept stays in one module rather than being split to
fit a number (whisper's own decoding.py is 826 lines). It catches a file that has grown past one
concept, not a long one that still holds one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rlhf_asr"
MAX_LINES = 800


def _module(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) of every import in the file, relative ones resolved."""
    package = _module(path, root) if path.name == "__init__.py" else _module(path, root).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # `from pkg import module`
    return found


def _floor(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "rlhf_asr" or len(parts) < 2:
        return "outside"
    return {"commands": "command", "recipes": "recipe"}.get(parts[1], "component")


def wrong_way_imports(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        module = _module(path, package)
        floor = _floor(module)
        for line, target in _imports(path, package):
            to = _floor(target)
            same_recipe = to == "recipe" and target.split(".")[:3] == module.split(".")[:3]
            if (
                floor == "component"
                and to in {"recipe", "command"}
                or floor == "recipe"
                and (to == "command" or to == "recipe" and not same_recipe and target.count(".") >= 2)
            ):
                problems.append(f"{path.relative_to(package.parent)}:{line}: {floor} imports {to} {target}")
    return problems


def test_imports_flow_one_way():
    assert wrong_way_imports() == []


def test_the_import_check_catches_each_wrong_way(tmp_path):
    """A check that cannot fail is no check: each forbidden direction, planted in a copy, is caught."""
    package = tmp_path / "src" / "rlhf_asr"
    for folder in ("commands", "recipes", "model"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "commands" / "cli.py").write_text("from rlhf_asr.recipes import demo\n")  # allowed
    (package / "recipes" / "demo.py").write_text("from rlhf_asr.model import core\n")  # allowed
    (package / "recipes" / "results.py").write_text(
        "from rlhf_asr.recipes.demo import x\ndef f():\n    from rlhf_asr.commands.train import parse_args\n"
    )
    (package / "model" / "core.py").write_text("from ..recipes import demo\nimport rlhf_asr.commands.cli\n")
    problems = wrong_way_imports(package)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "component imports recipe rlhf_asr.recipes.demo",
        "component imports command rlhf_asr.commands.cli",
        "recipe imports recipe rlhf_asr.recipes.demo.x",
        "recipe imports command rlhf_asr.commands.train.parse_args",
    ]


@pytest.mark.parametrize("folder", ["src", "tests"])
def test_no_file_over_the_line_cap(folder):
    long = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == []


def test_readme_layout_names_every_top_level_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = readme[readme.index("## Layout") :].split("```")[1]
    names = [
        p.name + ("/" if p.is_dir() else "")
        for p in sorted(PACKAGE.iterdir())
        if p.name != "__init__.py" and (p.suffix == ".py" or (p / "__init__.py").is_file())
    ]
    assert [name for name in names if f" {name}" not in tree] == []

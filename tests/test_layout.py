"""The package's floors: commands -> studies -> library, imports one way; no file over 800 lines.

The library (everything but `rlhf_asr.commands` and `rlhf_asr.studies`) never imports a study or a
command: it reads as a library without them. The studies (`rlhf_asr.studies`: the demo, the results
studies, the benchmarks) use the library as a user would and never import a command. Within the
studies, the modules at the top of the package are shared by every study (corpus, non-speech splits,
options, pipeline stages) and import no study; a study's folder (`studies/demo/`, `studies/results/`,
`studies/bench/`) imports those and its own modules, never another study's folder, so a study's code
is found in its folder. Imports inside functions count too: a lazy import is still a dependency.

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
    return {"commands": "command", "studies": "study"}.get(parts[1], "library")


def _study(module: str, package: Path) -> str | None:
    """The study folder a studies module belongs to (`rlhf_asr.studies.demo`), None for a shared one.

    A name such as `rlhf_asr.studies.results.report.regenerate` (from `from ... import name`) is cut
    back to the module it names, so only folders that exist count as a study."""
    parts = module.split(".")
    if len(parts) >= 3 and (package / parts[2]).is_dir():
        return ".".join(parts[:3])
    return None


def wrong_way_imports(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        module = _module(path, package)
        floor = _floor(module)
        for line, target in _imports(path, package):
            to = _floor(target)
            wrong = floor == "library" and to in {"study", "command"} or floor == "study" and to == "command"
            if not wrong and floor == to == "study":
                here, there = _study(module, package / "studies"), _study(target, package / "studies")
                wrong = there is not None and there != here  # shared -> a study, or one study -> another
                to = "another study" if wrong and here else "a study's folder" if wrong else to
            if wrong:
                problems.append(f"{path.relative_to(package.parent)}:{line}: {floor} imports {to} {target}")
    return problems


def test_imports_flow_one_way():
    assert wrong_way_imports() == []


def test_the_import_check_catches_each_wrong_way(tmp_path):
    """A check that cannot fail is no check: each forbidden direction, planted in a copy, is caught."""
    package = tmp_path / "src" / "rlhf_asr"
    for folder in ("commands", "studies", "studies/demo", "studies/results", "model"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    allowed = {
        "commands/cli.py": "from rlhf_asr.studies.demo import run\nfrom rlhf_asr.model import core\n",
        "studies/stages.py": "from rlhf_asr.model import core\nfrom . import corpus\n",
        "studies/demo/run.py": "from rlhf_asr.studies.stages import x\nfrom .report import y\nfrom .. import options\n",
        "studies/results/wer.py": "from rlhf_asr.studies.results.report import regenerate\n",
    }
    planted = {
        "model/core.py": "from ..studies import demo\nimport rlhf_asr.commands.cli\n",
        "studies/options.py": "def f():\n    from rlhf_asr.commands.train import parse_args\n",
        "studies/corpus.py": "from rlhf_asr.studies.demo.run import run_demo\n",
        "studies/results/hallucination.py": "from ..demo import report\n",
    }

    def problems_with(files: dict[str, str]) -> list[str]:
        for name, text in files.items():
            (package / name).write_text(text)
        return [problem.split(": ", 1)[1] for problem in wrong_way_imports(package)]

    assert problems_with(allowed) == []
    assert problems_with(planted) == [
        "library imports study rlhf_asr.studies.demo",
        "library imports command rlhf_asr.commands.cli",
        "study imports a study's folder rlhf_asr.studies.demo.run.run_demo",
        "study imports command rlhf_asr.commands.train.parse_args",
        "study imports another study rlhf_asr.studies.demo.report",
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

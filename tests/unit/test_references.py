"""Docs that cannot go stale: every repository path, `make` target, `streamflow` command and
`python -m` module named in the README, docs/, the YAML files' comments and the code's comments
and docstrings exists. A rename that leaves a reference behind fails here, not in a reader's
terminal."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from streamflow import config
from streamflow.cli import all_commands

ROOT = config.PROJECT_ROOT
CODE = ("streamflow", "serving", "scripts", "bench", "tests", "feature_repo", "dbt_project", "deploy")
FOLDERS = (*CODE, "docs")
# a path under one of the project's folders: a file with an extension, or a folder ending in "/"
PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(FOLDERS)}|\.ci)/[\w./-]*)")
# `make x` in backticks, or a command line starting with it (a code block, a shell comment)
MAKE = re.compile(r"(?:`|^\s*(?:#\s*)?)make ([a-z][a-z-]+)", re.M)
COMMAND = re.compile(r"`streamflow ([a-z][a-z-]+)")
MODULE = re.compile(r"python -m ([a-z_][\w.]*)")
MAKEFILE = (ROOT / "Makefile").read_text()
TARGETS = set(re.findall(r"^([a-zA-Z_-]+):", MAKEFILE, flags=re.M))


def _texts() -> dict[str, str]:
    """The files whose words point at other files: docs, YAML, the Makefile, and the code (its
    comments and docstrings; its string constants may name paths too, which must exist as well)."""
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "docker-compose.yml", ROOT / ".ci" / "run"]
    files += sorted((ROOT / "docs").glob("*.md"))
    for folder in CODE:
        for pattern in ("*.py", "*.yml", "*.yaml", "*.sql", "*.md"):
            files += sorted((ROOT / folder).rglob(pattern))
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for path in files
        if "target" not in path.parts and path.name != "test_references.py"  # its own examples
    }


def _exists(reference: str) -> bool:
    reference = reference.rstrip(".,:;)")
    if any(mark in reference for mark in "<*{") or reference.endswith("-"):
        return True  # a pattern (`month_<NNN>/`, `streamflow/engines/*.py`), not a path
    return (ROOT / reference).exists() or _generated(reference)


def _generated(reference: str) -> bool:
    """A path the tools write (dbt's target/, logs/): ignored by git, so absent from a fresh clone."""
    folder = reference.rstrip("/") + "/"  # a folder's pattern ends in "/"
    for name in (reference, folder):
        if subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False).returncode == 0:
            return True
    return False


def stale(texts: dict[str, str]) -> dict[str, list[str]]:
    commands = {command.name for command in all_commands()}
    found: dict[str, list[str]] = {}
    for name, text in texts.items():
        missing = [f"path {p}" for p in PATH.findall(text) if not _exists(p)]
        missing += [f"make {t}" for t in MAKE.findall(text) if t not in TARGETS]
        missing += [f"streamflow {c}" for c in COMMAND.findall(text) if c not in commands]
        missing += [
            f"python -m {m}"
            for m in MODULE.findall(text)
            if not (ROOT / Path(*m.split("."))).with_suffix(".py").exists()
            and not (ROOT / Path(*m.split("."))).is_dir()
            and m.split(".")[0] in ("streamflow", "serving", "scripts", "bench")
        ]
        if missing:
            found[name] = sorted(set(missing))
    return found


def test_every_reference_in_the_docs_and_comments_exists():
    assert stale(_texts()) == {}


def test_the_check_catches_what_it_forbids():
    text = (
        "see serving/reader.py and `make nothing`, run `streamflow fly` or python -m scripts.env;\n"
        "streamflow/config.py, `make test`, `streamflow pipeline`, python -m serving, month_<NNN>/\n"
        "  make nowhere\nto make room"
    )
    assert stale({"x": text}) == {
        "x": [
            "make nothing",
            "make nowhere",
            "path serving/reader.py",
            "python -m scripts.env",
            "streamflow fly",
        ]
    }


def test_the_architecture_page_names_every_module():
    """docs/architecture.md is where a newcomer looks for a module's job: each is named there,
    by its file name, and its folder too."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    unnamed = [
        str(path.relative_to(ROOT))
        for package in ("streamflow", "serving")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "__init__.py"
        and "__pycache__" not in path.parts
        and (path.name not in page or f"{path.parent.relative_to(ROOT)}/" not in page)
    ]
    assert unnamed == []

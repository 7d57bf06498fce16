"""The commands the README and docs/ show exist, and so does every flag they give them.

The docs are where a user copies a command from; a renamed or removed option would otherwise only show up as
"No such option" on their machine. `steelinspect ...` lines are read from fenced code blocks, with the flags of
the `# options:` comment lines that follow one (they list that command's other options); `python bench/X.py ...`
anywhere in the text, checked against the option strings in the script's source; and any other `--flag` the
prose (or a library message) names must be an option of some command or benchmark (the README once told
small-data users to pass --val-fraction, which no command had). The python examples import names that exist.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
from pathlib import Path

import pytest
import typer.main

from steelinspect.cli.main import app

ROOT_DIR = Path(__file__).resolve().parents[2]
DOCS = [ROOT_DIR / "README.md", *sorted((ROOT_DIR / "docs").glob("*.md"))]
CLI = typer.main.get_command(app)
FLAG = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)")


def documented_commands(text: str):
    """Each `steelinspect ...` line of the fenced code blocks, as its words (continuation lines joined), with the
    flags of the option-list comment lines under it appended."""
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        current = None
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            listed = re.match(r"#\s*(?:options:)?\s*(--.*)", line)
            if listed and current is not None and (line.startswith("# options:") or line.startswith("#  ")):
                current.extend(listed.group(1).split())
                continue
            command = re.match(r"(?:.*\s-m\s+)?steelinspect\s+(.*)", line.split(" #")[0])
            if command and not line.startswith("#"):
                if current is not None:
                    yield current
                current = command.group(1).split()
        if current is not None:
            yield current


def resolve(words: list[str]):
    """The commands a documented line names (`train binary|multiclass` names two) and the words after them;
    None when a name is not a command."""
    root_options = {o for p in CLI.params for o in p.opts}
    i = 0
    while i < len(words) and words[i] in root_options:  # steelinspect --max-pixels N COMMAND ...
        i += 2
    found = [CLI]
    while i < len(words) and all(hasattr(c, "commands") for c in found):  # groups: train, token
        names = words[i].split("|")
        if not all(name in found[0].commands for name in names):
            return None, words[i:]
        found = [found[0].commands[name] for name in names]
        i += 1
    if any(hasattr(c, "commands") for c in found):
        return None, words[i:]
    return found, words[i:]


def options(command) -> set[str]:
    return {o for p in command.params for o in [*p.opts, *getattr(p, "secondary_opts", [])]}


def problems(text: str) -> list[str]:
    out = []
    for words in documented_commands(text):
        commands, rest = resolve(words)
        if commands is None:
            out.append(f"steelinspect {' '.join(words)}: no such command")
            continue
        # `train binary|multiclass --flag`: the flag must be an option of both.
        known = set.intersection(*(options(c) for c in commands)) | options(CLI) | {"--help"}
        for flag in FLAG.findall(" ".join(rest)):
            if flag not in known:
                out.append(f"steelinspect {' '.join(words[:2])} ...: {flag} is not an option of it")
    return out


@functools.cache
def bench_options(script: Path) -> frozenset[str]:
    """The option strings a benchmark's source (and bench/common.py's) spells out; read once per script."""
    source = script.read_text(encoding="utf-8") + (script.parent / "common.py").read_text(encoding="utf-8")
    return frozenset(re.findall(r"[\"'](--[a-z0-9-]+)[\"']", source)) | {"--help"}


def bench_problems(text: str, bench_dir: Path = ROOT_DIR / "bench") -> list[str]:
    out = []
    for match in re.finditer(r"python (?:-m )?bench/(\w+)\.py([^`\n]*)", text):
        script = bench_dir / f"{match.group(1)}.py"
        if not script.is_file():
            out.append(f"bench/{script.name}: no such benchmark")
            continue
        out += [f"bench/{script.name}: {flag} is not an option of it" for flag in FLAG.findall(match.group(2))
                if flag not in bench_options(script)]
    return out


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_commands_and_flags_exist(path: Path):
    text = path.read_text(encoding="utf-8")
    assert problems(text) == []
    assert bench_problems(text) == []


def test_the_readme_shows_the_main_commands():
    """The check reads what it should: the README's blocks name the commands a user starts with."""
    commands = list(documented_commands((ROOT_DIR / "README.md").read_text(encoding="utf-8")))
    named = {" ".join(words[:2]) for words in commands}
    for command in ("train binary", "train segment", "export RUN_DIR", "score submission.csv"):
        assert command in named, command
    assert len(commands) >= 20


def test_a_wrong_flag_or_command_is_caught():
    text = """```bash
steelinspect train segment DATA --out runs/s --no-such-flag
# options: --epochs --tile-widht 256
steelinspect predict IMAGES --binary runs/b \\
    --submision sub.csv
steelinspect trian binary DATA
steelinspect train binary|multiclass DATA --tile-width 256 --pseudo-pixel-share 0.99
steelinspect train binary|segment DATA --crop-width 384..800
```"""
    found = problems(text)
    assert any("--no-such-flag" in p for p in found)
    assert any("--tile-widht" in p for p in found)
    assert any("--submision" in p for p in found)  # on a continuation line
    assert any("trian" in p and "no such command" in p for p in found)
    assert any("--pseudo-pixel-share" in p for p in found)  # a segmenter option given to the classifiers
    assert any("--crop-width" in p for p in found)  # an option of one of the two commands named
    assert not any("--epochs" in p or "--out" in p or "--binary" in p or "--tile-width " in p for p in found)


def test_a_wrong_bench_flag_is_caught():
    text = ("`python bench/transfer.py --segment-only --seg-epochs 3` and\n"
            "`python bench/transfer.py --segmentonly` and `python bench/no_such_bench.py`")
    found = bench_problems(text)
    assert len(found) == 2
    assert "--segmentonly" in found[0] and "no such benchmark" in found[1]


# torchrun's own flags (--nproc_per_node, --node_rank, ... up to their underscore), which the docs show with it.
TORCHRUN = {"--standalone", "--nnodes", "--nproc", "--node", "--rdzv", "--master"}


def every_option(bench_dir: Path = ROOT_DIR / "bench") -> set[str]:
    found = set(TORCHRUN) | {"--help"}
    pending = [CLI]
    while pending:
        command = pending.pop()
        found |= options(command)
        pending += list(getattr(command, "commands", {}).values())
    for script in bench_dir.iterdir():
        if script.is_file():
            found |= set(FLAG.findall(script.read_text(encoding="utf-8", errors="ignore")))
    return found


def test_every_flag_the_prose_and_the_messages_name_exists():
    """The docs, and the library's own messages and help (a warning once advised --val-fraction too)."""
    known = every_option()
    texts = [*DOCS, ROOT_DIR / "ARCHITECTURE.md", *sorted((ROOT_DIR / "src" / "steelinspect").rglob("*.py"))]
    named = {(str(path.relative_to(ROOT_DIR)), flag) for path in texts
             for flag in FLAG.findall(path.read_text(encoding="utf-8"))}
    assert {(name, flag) for name, flag in named if flag not in known} == set()
    assert ("README.md", "--val-fraction") in named and "--val-fraction" in known  # the check reads both sides


def documented_imports(text: str) -> list[tuple[str, str]]:
    """(module, name) of every `from steelinspect... import name` in the python code blocks."""
    found = []
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        try:
            tree = ast.parse(block)
        except SyntaxError:  # a sketch with placeholders: its import lines alone
            tree = ast.parse("\n".join(line.strip() for line in block.splitlines()
                                       if re.match(r"\s*from steelinspect\S* import [\w, ]+$", line)))
        found += [(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and (node.module or "").startswith("steelinspect") for alias in node.names]
    return found


def test_the_library_examples_import_what_exists():
    imports = [pair for path in DOCS for pair in documented_imports(path.read_text(encoding="utf-8"))]
    assert len(imports) >= 10
    missing = [f"from {module} import {name}" for module, name in imports
               if not hasattr(importlib.import_module(module), name)]
    assert missing == []

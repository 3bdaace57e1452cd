"""The code blocks of README.md and the docs work as written.

- every ```python block runs (the blocks of one file in order, in one namespace, as a reader pastes them);
- every ```bash block (and untagged block starting with ``python``, ``monai-iunet``, ...) names things that exist:
  programs on the PATH, ``monai-iunet`` subcommands and their options (``monai-iunet X --help``), Python modules and
  scripts and the options they take (``--help``), the config, meta, logging and other input files, the bundle's run
  id and network id in its configs;
- every ```json block parses.

A block preceded by ``<!-- not-run: reason -->`` is not run (meant for GPU or long-running code only); the markers
are listed in a warning.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from monai_iunet.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bundles").glob("*/docs/README.md")],
    key=lambda p: str(p),
)
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->\s*$")
SHELL_BUILTINS = {"cd", "export", "source", "."}
SHELL_PROGRAMS = {"python", "python3", "monai-iunet", "torchrun", "bash", "pip"}  # untagged blocks starting so
PREFIXES = {"time", "nice", "timeout", "env"}  # commands that run the command after their own arguments
INPUT_SUFFIXES = (".json", ".conf", ".py", ".ipynb", ".sh", ".cfg", ".toml", ".yaml", ".yml", ".md")
OUTPUT_FLAG = re.compile(r"out|save|dir")


@dataclass
class Block:
    path: Path
    line: int  # line number (1-based) of the block's first line of code
    lang: str
    code: str
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def _language(tag: str, code: str) -> str:
    """The block's language; shell dialects, and untagged blocks that start with a command we know, are "bash"."""
    tag = tag.lower()
    if tag in ("sh", "shell", "console"):
        return "bash"
    first = next((line.split()[0] for line in code.splitlines() if line.strip()), "")
    return "bash" if not tag and first in SHELL_PROGRAMS else tag


def extract_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown file, each with its language and ``not-run`` reason, if any."""
    blocks, lines = [], path.read_text().splitlines()
    i, reason = 0, None
    while i < len(lines):
        marker, fence = NOT_RUN.match(lines[i].strip()), FENCE.match(lines[i].strip())
        if marker:
            reason = marker.group(1) or "(no reason given)"
        elif fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
            code = "\n".join(lines[i + 1 : end])
            blocks.append(Block(path, i + 2, _language(fence.group(1), code), code, reason))
            i, reason = end, None
        elif lines[i].strip():
            reason = None  # a marker applies to the block right after it
        i += 1
    return blocks


ALL_BLOCKS = [block for path in DOCS for block in extract_blocks(path)]


def _files_with(*langs: str) -> list[Path]:
    return sorted({b.path for b in ALL_BLOCKS if b.lang in langs}, key=str)


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for path, line, code in json.load(sys.stdin):
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
"""


def test_blocks_are_found():
    """The extraction sees the README's Python quick start and its commands (so the other tests test something)."""
    readme = [b for b in ALL_BLOCKS if b.path.name == "README.md" and b.path.parent == REPO]
    assert {"python", "bash"} <= {b.lang for b in readme}
    assert _files_with("python") and _files_with("bash")


def test_not_run_markers_are_few_and_explained():
    skipped = [b for b in ALL_BLOCKS if b.not_run is not None]
    for block in skipped:
        assert block.not_run != "(no reason given)", f"{block.where}: write why the block is not run"
    assert len(skipped) <= max(2, len(ALL_BLOCKS) // 10), [b.where for b in skipped]
    if skipped:
        warnings.warn("code blocks not run: " + "; ".join(f"{b.where} ({b.not_run})" for b in skipped), stacklevel=1)


@pytest.mark.parametrize("path", _files_with("python"), ids=_id)
def test_python_blocks_run(path, tmp_path):
    blocks = [b for b in ALL_BLOCKS if b.path == path and b.lang == "python" and b.not_run is None]
    payload = json.dumps([[str(b.path), b.line, b.code] for b in blocks])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=payload,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, f"{_id(path)}: a python block failed\n{result.stderr[-4000:]}"


@pytest.mark.parametrize("path", _files_with("json"), ids=_id)
def test_json_blocks_parse(path):
    for block in (b for b in ALL_BLOCKS if b.path == path and b.lang == "json"):
        try:
            json.loads(block.code)
        except json.JSONDecodeError as e:
            pytest.fail(f"{block.where}: {e}")


# ----- bash blocks ---------------------------------------------------------------------------------------------------


def split_commands(code: str) -> list[list[str]]:
    """The commands of a shell block as token lists: continuations joined, comments dropped, split at ``&&``/``;``."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue  # a comment line may hold an apostrophe ("the tests' install")
        lexer = shlex.shlex(line, posix=True)
        lexer.whitespace_split, lexer.commenters = True, ""
        tokens = list(lexer)
        tokens = tokens[: next((i for i, t in enumerate(tokens) if t.startswith("#")), len(tokens))]
        current: list[str] = []
        for token in [*tokens, ";"]:
            if token in ("&&", "||", ";", "|"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
    return commands


def _strip_prefixes(tokens: list[str]) -> list[str]:
    """Drop environment assignments and wrappers like ``time``, ``nice -n 10``, ``timeout 600``."""
    while tokens:
        if re.match(r"^[A-Za-z_]\w*=", tokens[0]):
            tokens = tokens[1:]
        elif tokens[0] in PREFIXES:
            tokens = tokens[1:]
            while tokens and (tokens[0].startswith("-") or tokens[0].isdigit()):
                tokens = tokens[1:]
        else:
            break
    return tokens


def _options(args: list[str]) -> list[str]:
    return [a.split("=")[0] for a in args if a.startswith("--") and len(a) > 2]


COPIES: dict[str, Path] = {}
"""Folders a doc block copied (``cp -r SRC DST``): DST as written -> SRC in the checkout. Paths under DST resolve
into SRC, never to whatever an earlier run left at DST (e.g. in the system temp folder)."""


def _resolve(value: str, bases: list[Path]) -> Path | None:
    for copy, source in COPIES.items():
        if value == copy or value.startswith(copy.rstrip("/") + "/"):
            inside = source / value[len(copy) :].lstrip("/")
            return inside if inside.exists() else None
    for base in bases:
        if (base / value).exists():
            return base / value
    return None


def _input_files(args: list[str], subcommand: str = "") -> list[str]:
    """Input file names among ``args``: config lists expanded, values of output options left out."""
    names = []
    for i, arg in enumerate(args):
        flag = args[i - 1].lstrip("-") if i and args[i - 1].startswith("--") else ""
        if OUTPUT_FLAG.search(flag) or (flag == "filepath" and subcommand.endswith("_export")):
            continue
        values = [arg]
        if arg.startswith("["):
            with contextlib.suppress(ValueError, SyntaxError):
                values = [str(v) for v in ast.literal_eval(arg)]
        names += [v for v in values if v.endswith(INPUT_SUFFIXES) and "*" not in v and not v.startswith("-")]
    return names


@cache
def _subcommands() -> tuple[str, ...]:
    action = next(a for a in build_parser()._actions if a.dest == "command")
    return tuple(action.choices)


@cache
def _cli_help(subcommand: str) -> str:
    """``monai-iunet <subcommand> --help``, which must exit with status 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        main([subcommand, "--help"])
    assert info.value.code in (0, None), f"monai-iunet {subcommand} --help failed:\n{err.getvalue()}"
    return out.getvalue() + err.getvalue()


@cache
def _python_help(*target: str) -> str:
    """``python <target> --help`` (a script or ``-m module``), run from the repository root; must exit with 0."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for flags in (["--help"], ["--", "--help"]):  # argparse; fire (python-fire reads its flags after "--")
        command = [sys.executable, *target, *flags]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
        if result.returncode == 0:
            text = result.stdout + result.stderr
            # fire lists its flags as --name=NAME and positional arguments, which take flag syntax too, as NAME
            return (
                text
                if len(flags) == 1
                else text + " " + " ".join(f"--{w.lower()}" for w in re.findall(r"\b[A-Z_]+\b", text))
            )
    raise AssertionError(f"python {' '.join(target)} --help failed:\n{result.stderr[-2000:]}")


def _check_bundle_command(subcommand: str, args: list[str], bases: list[Path], where: str) -> None:
    """``monai.bundle <subcommand> args``: the subcommand exists, and the run id / network id are in the configs."""
    from monai.bundle import ConfigParser, scripts

    assert callable(getattr(scripts, subcommand, None)), f"{where}: monai.bundle has no {subcommand!r}"
    flags = {args[i].lstrip("-"): args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    positional = args[0] if args and not args[0].startswith("-") else None
    if "config_file" not in flags:
        return
    value = flags["config_file"]
    files = [str(v) for v in ast.literal_eval(value)] if value.startswith("[") else [value]
    parser = ConfigParser()
    parser.read_config([str(_resolve(f, bases) or f) for f in files])
    if subcommand == "run":
        run_id = flags.get("run_id", positional or "run")
        assert run_id in parser, f"{where}: run id {run_id!r} is not in {files}"
    elif subcommand in ("ckpt_export", "verify_net_in_out", "onnx_export", "trt_export"):
        net_id = flags.get("net_id", positional or "network_def")
        assert net_id in parser, f"{where}: network id {net_id!r} is not in {files}"


def _check_python(args: list[str], bases: list[Path], where: str) -> None:
    if args[:1] == ["-c"]:
        return
    if args[:1] == ["-m"]:
        module, rest = args[1], args[2:]
        if module == "monai.bundle":
            assert rest, f"{where}: `python -m monai.bundle` needs a subcommand"
            _check_bundle_command(rest[0], rest[1:], bases, where)
            return
        if module == "pytest":
            for arg in (a for a in rest if not a.startswith("-") and "::" not in a):
                assert _resolve(arg, bases), f"{where}: pytest path {arg!r} does not exist"
            return
        help_text = _python_help("-m", module)
    else:
        script = _resolve(args[0], bases)
        assert script, f"{where}: script {args[0]!r} does not exist"
        rest = args[1:]
        help_text = _python_help(str(script))
    for option in _options(rest):
        assert option in help_text, f"{where}: python {' '.join(args[:2])} has no option {option}"


def _check_cli(args: list[str], bases: list[Path], where: str) -> None:
    """``monai-iunet args``: the subcommand exists, its ``--help`` works and knows the options (``run``: MONAI's)."""
    assert args and args[0] in _subcommands(), f"{where}: monai-iunet has no subcommand {args[:1]}"
    help_text = _cli_help(args[0])
    if args[0] == "run":
        _check_bundle_command("run", args[1:], bases, where)
        return
    for option in _options(args[1:]):
        assert option in help_text, f"{where}: monai-iunet {args[0]} has no option {option}"


def _check_command(tokens: list[str], bases: list[Path], where: str) -> list[Path]:
    """Check one command; returns the folders relative paths are resolved against afterwards (``cd`` moves them)."""
    tokens = _strip_prefixes(tokens)
    if not tokens:
        return bases
    program, args = tokens[0], tokens[1:]
    if program == "cd":
        target = _resolve(args[0], bases) if args else None
        assert target and target.is_dir(), f"{where}: cd into a folder that does not exist: {args}"
        return [target]
    if program in SHELL_BUILTINS:
        return bases
    if program == "cp":
        *sources, target = [a for a in args if not a.startswith("-")]
        source = _resolve(sources[0], bases) if len(sources) == 1 else None
        assert source, f"{where}: cp from a path that does not exist: {sources}"
        COPIES[target] = source
        return bases
    assert shutil.which(program), f"{where}: program {program!r} is not on the PATH"
    subcommand = args[args.index("monai.bundle") + 1] if "monai.bundle" in args[:-1] else (args[:1] or [""])[0]
    for name in _input_files(args, subcommand):
        assert _resolve(name, bases), f"{where}: {name!r} does not exist"
    if program == "torchrun":
        args = args[args.index("-m") :] if "-m" in args else args
        program = "python"
    if program in ("python", "python3"):
        _check_python(args, bases, where)
    elif program == "monai-iunet":
        _check_cli(args, bases, where)
    elif program == "bash":
        scripts = [a for a in args if not a.startswith("-")]
        assert scripts and _resolve(scripts[0], bases), f"{where}: bash script {scripts[:1]} does not exist"
    return bases


@pytest.mark.parametrize("path", _files_with("bash"), ids=_id)
def test_bash_blocks_name_existing_things(path):
    # commands are written from the repository root; a bundle's README may also be run from the bundle folder
    start = [REPO] + (
        [path.parents[1]] if path.parent.name == "docs" and path.parents[1].parent.name == "bundles" else []
    )
    COPIES.clear()
    for block in (b for b in ALL_BLOCKS if b.path == path and b.lang == "bash"):
        bases = start
        for tokens in split_commands(block.code):
            bases = _check_command(tokens, bases, block.where)


def test_split_commands():
    code = "# a comment\nOMP_NUM_THREADS=1 python -m x --net#ch \"[1, 2]\" \\\n    --y 'a b'  # trailing\ncd d && ls"
    assert split_commands(code) == [
        ["OMP_NUM_THREADS=1", "python", "-m", "x", "--net#ch", "[1, 2]", "--y", "a b"],
        ["cd", "d"],
        ["ls"],
    ]
    assert _strip_prefixes(["OMP_NUM_THREADS=1", "nice", "-n", "10", "time", "monai-iunet", "plan"]) == [
        "monai-iunet",
        "plan",
    ]
    assert _input_files(["--config_file", "['a.json','b.json']", "--output_dir", "o.json", "--x", "c.conf"]) == [
        "a.json",
        "b.json",
        "c.conf",
    ]

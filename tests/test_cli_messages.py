"""Messages as the user meets them: one line naming the key and what it accepts, the command line blamed
for its own values, and no option taken for another by its first letters."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffrestore.cli import restore as cli

from train_helpers import REPO, reset_accelerate, write_config

sys.path.insert(0, str(REPO))
import train  # noqa: E402  (the script, imported for its main)

CLI_SOURCES = [REPO / "train.py", *sorted((REPO / "diffrestore").rglob("*.py")),
               *sorted((REPO / "scripts").glob("*.py")), *sorted((REPO / "benchmarks").glob("*.py"))]


def parsers_without_allow_abbrev_off(path: Path) -> list[int]:
    """Lines of ``path`` that build an ArgumentParser allowing abbreviations (argparse's default)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "ArgumentParser":
            off = any(k.arg == "allow_abbrev" and isinstance(k.value, ast.Constant) and k.value.value is False
                      for k in node.keywords)
            lines += [] if off else [node.lineno]
    return lines


def test_no_parser_of_the_project_takes_an_abbreviation():
    found = {str(path.relative_to(REPO)): parsers_without_allow_abbrev_off(path) for path in CLI_SOURCES}
    assert sum(1 for path in CLI_SOURCES if "ArgumentParser(" in path.read_text()) >= 20  # the scan sees them
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_w_is_not_whole(tmp_path, capsys):
    """CodeFormer's ``-w 0.7`` typed as ``--w 0.7``: refused, not read as --whole."""
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["--lq", str(tmp_path), "--w", "0.7"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --w" in capsys.readouterr().err


def test_a_wrong_override_is_one_line_naming_the_key_and_what_it_accepts(tmp_path, face_paths):
    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")
    run = subprocess.run([sys.executable, str(REPO / "sample.py"), "--lq", str(face_paths[0]), "--out",
                          str(tmp_path / "out"), "--device", "cpu", "guidance_range=0.5"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("error: command line: config key 'guidance_range': must be a list of numbers "
                                 "(got 0.5; e.g. [") and run.stderr.count("\n") == 1, run.stderr


@pytest.fixture
def config(tmp_path) -> Path:
    yield write_config(tmp_path, "backbone", tmp_path / "run")
    reset_accelerate()


@pytest.mark.parametrize("override, message", [
    ("optim.lr=abc", "error: command line: config key 'optim.lr': must be a number (got 'abc'; e.g. 0.0002)"),
    ("optim.lrr=1",
     "error: command line: config key 'optim.lrr': not a setting of OptimConfig; did you mean optim.lr?"),
    ("max_steps", "error: command line: override 'max_steps' is not of the form key=value"),
])
def test_train_blames_the_command_line_for_an_override(override, message, config, capsys):
    assert train.main(["--config", str(config), override]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_train_names_the_line_and_column_of_a_malformed_yaml(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("stage: backbone\noptim:\n  lr: [1, 2\nbatch_size: 3\n")
    assert train.main(["--config", str(broken)]) == 2
    assert capsys.readouterr().err == (f"error: {broken}:4:11: cannot parse YAML: did not find expected ',' or ']' "
                                       "(while parsing a flow sequence at 3:7)\n")

"""The README's commands and API example stay true."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_command():
    commands = [line for block in _blocks("bash") for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    setup, tests = commands
    assert "torch==2.13.0" in setup and "latticeprune demo" in setup
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_readme_is_a_landing_page_whose_links_exist():
    assert len(README.splitlines()) <= 120
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_readme_api_example_runs_as_written(capsys):
    (example,) = _blocks("python")
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", out).group(1))
    sparsity = float(re.search(r"achieved sparsity ([0-9.]+)", out).group(1))
    assert accuracy > 0.8
    assert sparsity >= 0.5

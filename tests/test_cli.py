"""The command line's main job."""

import io
import re
import subprocess
import sys

import pytest

from conftest import SHARED_DATA
from latticeprune.cli import build_parser, run_demo


def test_demo_trains_and_prints_a_results_table():
    out = io.StringIO()
    rows = run_demo(build_parser().parse_args(["demo", "--epochs", "2", "--hidden-size", "8"]),
                    out=out)
    text = out.getvalue()
    assert "1347 train / 450 test" in text
    accuracy = float(rows[0]["test accuracy"])
    assert 0.0 <= accuracy <= 1.0
    assert re.search(rf"dense lstm-8\s+{rows[0]['test accuracy']}", text)


def test_module_entry_point_and_errors():
    result = subprocess.run([sys.executable, "-m", "latticeprune", "--help"],
                            capture_output=True, text=True, check=True)
    assert "demo" in result.stdout
    with pytest.raises(SystemExit, match="--data PATH"):
        run_demo(build_parser().parse_args(["demo", "--dataset", "mnist"]))


@pytest.mark.skipif(not (SHARED_DATA / "mnist-10k").exists(), reason="shared MNIST not present")
def test_demo_on_mnist_folder():
    out = io.StringIO()
    args = build_parser().parse_args(["demo", "--dataset", "mnist", "--data",
                                      str(SHARED_DATA / "mnist-10k"), "--epochs", "1",
                                      "--hidden-size", "8"])
    run_demo(args, out=out)
    assert "8000 train / 2000 test sequences of 28 steps x 28 features" in out.getvalue()

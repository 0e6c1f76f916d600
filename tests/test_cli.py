"""The command line's main job: the demo grid search, its table, plot and JSON."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import SHARED_DATA
from latticeprune import cli
from latticeprune.cli import build_parser, run_demo

SMALL = ["--epochs", "2", "--hidden-size", "8", "--cv", "2"]


def test_demo_prints_the_table_exports_the_chosen_model_and_writes_numbers(tmp_path):
    out = io.StringIO()
    args = build_parser().parse_args(["demo", *SMALL, "--units", "0.5", "--sparsities", "0.8",
                                      "--output", str(tmp_path)])
    rows = run_demo(args, out=out)
    text = out.getvalue()
    assert "1347 train / 450 test" in text
    assert "grid search: 4 candidates x 2 folds (a fold's dense net fitted once)" in text
    assert [row["name"] for row in rows] == ["dense", "unit lattice 0.5", "unit magnitude 0.5",
                                             "weight magnitude 0.8", "connection lattice 0.8"]
    assert "[1/4] unit lattice 0.5: cv accuracy " in text and "[4/4] connection" in text
    assert "RNNClassifier(" not in text and "[CV]" not in text
    assert max(len(line) for line in text.splitlines() if str(tmp_path) not in line) <= 100
    assert len(text.splitlines()) <= 30  # one screen
    # results.json holds numbers, the ones the table printed
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"] == rows and saved["chosen"] == max(
        rows[1:], key=lambda row: row["cv accuracy"]["mean"])["name"]
    assert {"python", "torch", "scikit-learn", "skorch", "numpy", "latticeprune"} <= set(
        saved["software"])
    for row in saved["rows"][1:]:
        cv = row["cv accuracy"]
        assert len(cv["folds"]) == 2 and cv["mean"] == pytest.approx(np.mean(cv["folds"]))
        assert f"{cv['mean']:.4f} +- {cv['std']:.4f}" in text
        assert 0 < row["test accuracy"] <= 1 and row["batch 1 ms"] > 0
        assert row["speed-up 256"] == pytest.approx(saved["rows"][0]["batch 256 ms"]
                                                    / row["batch 256 ms"])
    units = {row["name"]: row["parameters"] for row in rows}
    assert units["unit lattice 0.5"] < units["dense"]  # 8 -> 4 units: a smaller net
    assert saved["onnx"]["max abs difference"] < 1e-5
    assert (tmp_path / "chosen.onnx").stat().st_size > 1000
    assert (tmp_path / "accuracy_vs_latency.png").stat().st_size > 1000


def test_module_entry_point_and_errors():
    result = subprocess.run([sys.executable, "-m", "latticeprune", "demo", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--sparsities" in result.stdout
    with pytest.raises(SystemExit, match="--data PATH"):
        run_demo(build_parser().parse_args(["demo", "--dataset", "mnist"]))


@pytest.mark.skipif(not (SHARED_DATA / "mnist-10k").exists(), reason="shared MNIST not present")
def test_demo_on_mnist_folder(tmp_path):
    from latticeprune.datasets import read_idx, write_idx
    # The first 600 / 200 digits of the shared folder, in a folder of the same four IDX files.
    folder = tmp_path / "mnist"
    folder.mkdir()
    for path in (SHARED_DATA / "mnist-10k").glob("*-ubyte*"):
        n = 600 if path.name.startswith("train") else 200
        write_idx(folder / path.name.removesuffix(".gz"), read_idx(path)[:n])
    out = io.StringIO()
    args = build_parser().parse_args(["demo", "--dataset", "mnist", "--data", str(folder),
                                      "--epochs", "1", "--hidden-size", "8", "--cv", "2",
                                      "--units", "0.5", "--sparsities", "0.9",
                                      "--output", str(tmp_path)])
    run_demo(args, out=out)
    assert "600 train / 200 test sequences of 28 steps x 28 features" in out.getvalue()
    assert (tmp_path / "results.json").exists()


def _help_entries(text):
    """(option line, help text) of each option in an argparse help output."""
    lines = text.split("options:")[1].splitlines()[1:]
    entries = []
    for line in lines:
        if line.startswith("  -"):
            name, _, help_text = line.strip().partition("  ")
            entries.append([name, help_text.strip()])
        elif line.strip() and entries:
            entries[-1][1] += " " + line.strip()
    return entries


def test_every_demo_option_has_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--help"])
    assert exit_info.value.code == 0
    entries = _help_entries(capsys.readouterr().out)
    assert len(entries) == 12
    assert all(help_text for _, help_text in entries), entries


def _mnist_without_files(tmp_path):
    return ["--dataset", "mnist", "--data", str(tmp_path)]


@pytest.mark.parametrize("argv, option", [
    (lambda tmp: ["--dataset", "mnist", "--data", str(tmp / "missing")], "--data"),
    (lambda tmp: ["--dataset", "mnist"], "--data"),
    (lambda tmp: ["--data", str(tmp)], "--data"),
    (_mnist_without_files, "--data"),
    (lambda tmp: ["--sparsities", "1.5"], "--sparsities"),
    (lambda tmp: ["--sparsities", "0.5", "1.0"], "--sparsities"),
    (lambda tmp: ["--sparsities", "-0.1"], "--sparsities"),
    (lambda tmp: ["--sparsities", "nan"], "--sparsities"),
    (lambda tmp: ["--sparsities", "half"], "--sparsities"),
    (lambda tmp: ["--units", "1.0"], "--units"),
    (lambda tmp: ["--n-jobs", "0"], "--n-jobs"),
    (lambda tmp: ["--folds", "1"], "--folds"),
    (lambda tmp: ["--cv", "0"], "--folds"),
    (lambda tmp: ["--cv", "5000"], "--folds"),
    (lambda tmp: ["--dataset", "cifar"], "--dataset"),
    (lambda tmp: ["--cell", "transformer"], "--cell"),
    (lambda tmp: ["--epochs", "0"], "--epochs"),
    (lambda tmp: ["--hidden-size", "x"], "--hidden-size"),
    (lambda tmp: ["--random-state", "-1"], "--random-state"),
    (lambda tmp: ["--output", str(tmp / "a-file" / "out")], "--output"),
])
def test_bad_arguments_exit_2_before_any_training(argv, option, tmp_path, capsys, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    started = []
    monkeypatch.setattr(cli, "run_demo", lambda *args, **kwargs: started.append(args))
    monkeypatch.setattr(cli.RNNClassifier, "fit", lambda *args, **kwargs: started.append(args))
    argv = argv(tmp_path)
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("latticeprune demo: error: argument ")
    assert option in errors[0]
    assert not started


def test_valid_arguments_reach_the_demo(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "run_demo", lambda args, data: calls.append((args, data)))
    out = tmp_path / "new" / "folder"
    assert cli.main(["demo", "--folds", "4", "--n-jobs", "-1", "--sparsities", "0", "0.95",
                     "--output", str(out)]) == 0
    (args, (X_train, X_test, y_train, y_test)), = calls
    assert args.cv == 4 and args.n_jobs == -1 and args.sparsities == [0.0, 0.95]
    assert out.is_dir() and len(X_train) == len(y_train) == 1347


def test_build_kernel_reports_where_the_kernel_is(capsys):
    from latticeprune.kernel_build import library_path
    from latticeprune.top_down_kernel import kernel_extension
    assert cli.main(["build-kernel"]) == 0  # builds it here unless an earlier test did
    out = capsys.readouterr().out
    assert out.strip() == f"the top-down LSTM kernel (this CPU): {library_path(kernel_extension())}"


def test_build_kernel_without_a_compiler_exits_1_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    assert cli.main(["build-kernel", "--capability", "avx2"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("latticeprune build-kernel: no C++ compiler (no-such-compiler) found; "
                           "install one (e.g. g++)")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["build-kernel", "--capability", "sse"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'SSE'" in capsys.readouterr().err

"""The tool commands that were `python -m` mains: report, bench-export, bench-train, bench-sr, sr-eval, curves."""
import argparse
import importlib
import json
import subprocess
import sys

import pytest

from sonoedge.cli import main

TOOLS = {  # command module -> arguments that must parse
    "report": ["BUNDLE"],
    "bench_export": ["BUNDLE", "CKPT", "--rounds", "3", "--size", "256"],
    "bench_train": ["--preset", "athreya2024-conference", "--preset", "athreya2024-journal", "--threads", "1"],
    "bench_sr": ["--onnx", "model.onnx"],
    "sr_eval": ["--realus", "realus", "--out", "out", "--set", "max_iters=7", "--report"],
    "curves": ["RUN", "out.png", "--title", "run"],
}


def _parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=name)
    importlib.import_module(f"sonoedge.commands.{name}").add_arguments(parser)
    return parser


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_arguments_parse_and_help_works(name, capsys):
    _parser(name).parse_args(TOOLS[name])
    with pytest.raises(SystemExit) as exc:
        _parser(name).parse_args(["--help"])
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


def test_defaults_are_the_old_mains():
    args = _parser("bench_export").parse_args(["B", "C"])
    assert (args.rounds, args.threads, args.size) == (20, 2, None)
    args = _parser("bench_train").parse_args(["--preset", "p"])
    assert (args.preset, args.size, args.batch, args.steps, args.warmup, args.threads, args.device) == (
        ["p"], 256, 1, 2, 1, 0, "auto")
    args = _parser("bench_sr").parse_args([])
    assert (args.threads, args.repeats, args.iters, args.onnx, args.blind) == (1, 5, 10, None, False)
    args = _parser("sr_eval").parse_args(["--realus", "r", "--out", "o"])
    assert (args.methods, args.artifacts, args.set, args.threads, args.report, args.tag, args.frames,
            args.degradations, args.checkpoint, args.budget) == (
        None, "runs/sr-artifacts", [], 1, False, "", "", "", None, None)
    assert not args.handheld


def test_sr_eval_methods_match_the_library():
    from sonoedge.commands import sr_eval
    from sonoedge.train.sr import evaluate_hc18

    assert sr_eval.METHODS == evaluate_hc18.METHODS


def test_sr_eval_degradation_names_and_budget_match_the_library():
    from sonoedge.commands import sr, sr_eval
    from sonoedge.train.sr import blind, degrade, evaluate_degradations

    assert sr_eval.DEGRADATION_METHODS == evaluate_degradations.METHODS
    assert sr_eval.VALIDATION_VARIANTS == blind.VALIDATION_VARIANTS
    assert sr_eval.DEGRADATIONS == degrade.EVAL_DEGRADATIONS
    assert sr.DEFAULT_BUDGET_S == evaluate_degradations.ZERO_SHOT_BUDGET_S


def test_command_modules_import_nothing_heavy():
    code = ("import sys\n"
            + "".join(f"import sonoedge.commands.{name}\n" for name in TOOLS)
            + "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'onnx', 'onnxruntime', 'matplotlib'})\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_prints_every_precision_of_the_default_bundle(capsys):
    from sonoedge.runtime.bundle import default_bundle_path

    assert main(["report", str(default_bundle_path())]) == 0
    out = capsys.readouterr().out
    assert "| precision | gate |" in out
    for precision in ("fp32", "fp16", "int8"):
        assert f"| {precision} |" in out


def test_curves_writes_a_png(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    records = [{"kind": "step", "epoch": 0, "step": 1, "loss": 1.0}]
    records += [{"kind": "epoch", "epoch": e, "step": 2 * e, "val_lncc": 0.5 + 0.1 * e, "val_ssim": 0.6 + 0.1 * e,
                 "val_psnr": 20.0 + e} for e in range(3)]
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = tmp_path / "curves.png"
    assert main(["curves", str(run), str(out), "--title", "tiny"]) == 0
    assert out.stat().st_size > 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out


def test_curves_without_a_log_is_one_sentence(tmp_path, capsys):
    assert main(["curves", str(tmp_path), str(tmp_path / "c.png")]) == 2
    assert "log.jsonl does not exist" in capsys.readouterr().err


def test_bench_sr_blind_times_the_blind_generator():
    from sonoedge.train.sr.bench import bench_blind

    result = bench_blind(threads=1, repeats=1, iters=1)
    assert result["parameters"] > 0
    for key in ("single_pass_600x448", "single_pass_800x540", "train_iteration_batch16_lr48",
                "zero_shot_iteration_batch8_lr16", "zero_shot_iteration_anchor_consistency_lr56"):
        assert result[key]["cpu_ms"] > 0 and result[key]["wall_ms"] > 0

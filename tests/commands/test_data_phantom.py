"""`sonoedge data phantom`: options into PhantomConfig, the files it writes, one-sentence errors."""
from __future__ import annotations

import json

from sonoedge.cli import main


def test_cli_pairs_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["data", "phantom", "--pairs", "2", "--size", "64x80", "--out", str(out), "--geometry", "convex",
                 "--misregistration", "0", "--seed", "3", "--workers", "1", "--quiet", "--set", "low.noise_db=-40"])
    assert code == 0
    assert len(list((out / "high").glob("*.png"))) == 2
    data = json.loads((out / "phantom.json").read_text())
    assert data["config"]["size"] == [64, 80] and data["config"]["misregistration_px"] == 0.0
    assert data["config"]["low"]["noise_db"] == -40
    assert "wrote 2 pairs" in capsys.readouterr().out
    assert main(["data", "phantom", "--size", "big", "--out", str(tmp_path / "x")]) == 2
    assert main(["data", "phantom", "--out", str(tmp_path / "y"), "--set", "low.colour=1"]) == 2
    err = capsys.readouterr().err
    assert "--size 'big'" in err and "colour" in err and "Traceback" not in err

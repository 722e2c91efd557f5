"""tools/remeasure_benchmarks.py: its listing and argument handling (the items themselves are the
benchmarks, minutes each; they are not run here). A check that it covers every CPU row of
docs/BENCHMARKS.md keeps the two in step."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "remeasure_benchmarks.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("remeasure_benchmarks", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_list_prints_every_item_with_an_estimate_and_a_total_under_the_budget():
    out = subprocess.run([sys.executable, str(TOOL), "--list"], capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if re.match(r"^[a-z0-9-]+\s+\d+\.\d\s", line)]
    names = [line.split()[0] for line in rows]
    assert "pipeline-butterfly-guard-on" in names and "pipeline-phantom-guard-off" in names
    assert "daemon-soak-5min" in names and "setup-resnet15" in names  # the setup items the run needs, listed
    one = subprocess.run([sys.executable, str(TOOL), "--list", "--only", "grey-conversion"], capture_output=True,
                         text=True, check=True).stdout
    assert "grey-conversion" in one and "setup-" not in one and "pipeline-" not in one
    total = float(re.search(r"^total\s+(\d+\.\d)", out, re.M).group(1))
    pipeline = sum(float(line.split()[1]) for line in rows if line.startswith("pipeline-") and "-guard-" in line)
    assert 0 < pipeline <= 15  # the 12 runs the speed contract is judged on: 150-400 frames x 7 repeats
    assert 0 < total <= 50 and "not run here" in out and "GPU" in out


def test_only_selects_items_with_their_setup_and_refuses_unknown_names(tool):
    every = tool.items()
    chosen = [i.name for i in tool.select("edge-student-teacher,sr-onnx", every)]
    assert chosen == ["setup-sr-bundle", "setup-edge-onnx", "sr-onnx", "edge-student-teacher"]  # the table's order
    assert {i.name for i in tool.select("pipeline-sonosite*", every)} == {"pipeline-sonosite-guard-on",
                                                                          "pipeline-sonosite-guard-off"}
    with pytest.raises(SystemExit, match="no item 'nonsense'"):
        tool.select("nonsense", every)


def test_every_clip_runs_with_the_guard_on_and_off_and_every_cpu_row_has_an_item(tool, tmp_path):
    every = tool.items()
    names = {i.name for i in every}
    for clip in (*tool.CLIPS, tool.PHANTOM):
        assert {f"pipeline-{clip}-guard-on", f"pipeline-{clip}-guard-off"} <= names
    lines = (REPO / "docs" / "BENCHMARKS.md").read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("| area |"))  # the summary table only
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    areas = {line.split("|")[1].strip() for line in rows if "GPU setting" not in line}
    assert len(areas) > 20
    covered = " ; ".join(i.row for i in every)
    missing = [a for a in areas if a not in covered]
    assert not missing, f"rows of docs/BENCHMARKS.md without an item: {missing}"
    ctx = tool.Ctx(tmp_path, tmp_path / "realus", tiny=True)
    for item in every:  # every command builds; outputs only under --out (or the repository's files read)
        argv = item.argv(ctx)
        assert argv and all(isinstance(a, str) for a in argv), item.name
        for part in argv:
            if part.startswith("/") and Path(part).suffix not in (".py",) and str(REPO) in part:
                assert Path(part).exists(), (item.name, part)  # a repository path is read, never made


def test_out_must_be_new_empty_or_its_own_and_never_inside_the_repository(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)

    inside = run("--out", str(REPO / "remeasure-out"), "--only", "edge-orin-estimate")
    assert inside.returncode != 0 and "inside the repository" in inside.stderr
    assert not (REPO / "remeasure-out").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused = run("--out", str(foreign), "--only", "edge-orin-estimate")
    assert refused.returncode != 0 and "did not write" in refused.stderr
    assert run("--only", "edge-orin-estimate").returncode == 2  # --out is required to run
    missing = run("--out", str(tmp_path / "new"), "--realus", str(tmp_path / "nowhere"), "--only", "edge-orin-estimate")
    assert missing.returncode != 0 and "realus" in missing.stderr and not (tmp_path / "new").exists()

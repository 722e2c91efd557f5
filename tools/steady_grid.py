"""Search the steadier's settings (runtime/stream/steady.py) against the three temporal conditions.

    python tools/steady_grid.py --phantom clip1 clip2 clip3 --real $R/clips/itkpocus/butterfly-ocular-phantom.mp4 ... \
        --bundle default --out grid.json

For every phantom clip folder (``sonoedge data phantom --clip --png``: low/, high/) and real clip,
the bundle's enhanced frames are computed ONCE (the stream's Enhancer, steadying off, region as the
bundle says; real clips: the first ``--frames`` frames, full frame, as ``sonoedge bench --temporal``
does), then each setting of the grid steadies them and is scored with runtime/temporal.py:

    phantom: warping error <= the console clip's, and |PSNR(steadied) - PSNR(unsteadied)| <= 0.2 dB
             (per-frame PSNR against the console frame, mean over frames)
    real:    warping error < the input's

A setting is (strength, tau) of ``Steadier`` (sigma 1.5 px as shipped).
Prints one line per setting and which settings pass everything; writes all numbers to ``--out``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np


def enhanced(bundle: str, frames: list[np.ndarray]) -> np.ndarray:
    from sonoedge.runtime.bundle.model import load_model
    from sonoedge.runtime.frames import Frame, to_grey
    from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig

    cfg = EnhancerConfig(bundle="" if bundle == "default" else bundle, threads=1)
    model = load_model(cfg)
    try:
        enh = Enhancer(model, cfg)
        return np.stack([to_grey(enh(Frame(f, i)).image) for i, f in enumerate(frames)])
    finally:
        model.close()


def read_folder(folder: Path) -> list[np.ndarray]:
    from sonoedge.runtime.readers import read_image

    return [read_image(p) for p in sorted(folder.glob("*.png"))]


def read_clip(path: str, n: int) -> list[np.ndarray]:
    from sonoedge.runtime.readers import iter_frames

    return list(itertools.islice(iter_frames(path), n))  # grey uint8 (H, W) frames already


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", nargs="*", default=[], help="phantom clip folders (low/, high/)")
    parser.add_argument("--real", nargs="*", default=[], help="real clip files")
    parser.add_argument("--bundle", default="default")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--strengths", default="0.6,0.7,0.75,0.8,0.85,0.9")
    parser.add_argument("--taus", default="15,20,25,30")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cache", help="folder for the enhanced clips (reused when present)")
    args = parser.parse_args()

    from sonoedge.runtime.metrics import psnr
    from sonoedge.runtime.stream.steady import Steadier
    from sonoedge.runtime.temporal import input_flows, warping_error

    clips = []
    for folder in map(Path, args.phantom):
        low, high = read_folder(folder / "low"), read_folder(folder / "high")
        clips.append({"name": folder.name, "kind": "phantom", "in": np.stack(low), "high": np.stack(high)})
    for path in args.real:
        clips.append({"name": Path(path).name, "kind": "real", "in": np.stack(read_clip(path, args.frames))})
    for c in clips:
        cached = Path(args.cache) / f"{c['name']}.npy" if args.cache else None
        if cached is not None and cached.exists():
            c["out"] = np.load(cached)
        else:
            c["out"] = enhanced(args.bundle, list(c["in"]))
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, c["out"])
        c["flows"] = input_flows(c["in"])
        c["we_in"] = warping_error(c["in"], c["in"], c["flows"])["warping_error"]
        c["we_out"] = warping_error(c["in"], c["out"], c["flows"])["warping_error"]
        if c["kind"] == "phantom":
            c["we_console"] = warping_error(c["in"], c["high"], c["flows"])["warping_error"]
            c["psnr_out"] = float(np.mean([psnr(o, h) for o, h in zip(c["out"], c["high"])]))
        print(f"{c['name']}: input {c['we_in']:.3f} enhanced {c['we_out']:.3f}"
              + (f" console {c['we_console']:.3f} psnr {c['psnr_out']:.2f}" if c["kind"] == "phantom" else ""), flush=True)

    floats = [[float(v) for v in text.split(",")] for text in (args.strengths, args.taus)]
    rows = []
    for strength, tau in itertools.product(*floats):
        row = {"strength": strength, "tau": tau, "clips": {}, "pass": True}
        for c in clips:
            st = Steadier(strength, tau)
            steadied = np.stack([st(i, o) for i, o in zip(c["in"], c["out"])])
            we = warping_error(c["in"], steadied, c["flows"])["warping_error"]
            r = {"warping_error": we}
            if c["kind"] == "phantom":
                r["psnr_change"] = float(np.mean([psnr(o, h) for o, h in zip(steadied, c["high"])])) - c["psnr_out"]
                r["pass"] = we <= c["we_console"] and abs(r["psnr_change"]) <= 0.2
            else:
                r["pass"] = we < c["we_in"]
            row["clips"][c["name"]] = r
            row["pass"] &= r["pass"]
        rows.append(row)
        print(f"strength {strength:g} tau {tau:g}: " + "  ".join(
            f"{n} {r['warping_error']:.3f}" + (f"/{r['psnr_change']:+.2f}dB" if "psnr_change" in r else "") + ("" if r["pass"] else "x")
            for n, r in row["clips"].items()) + ("  PASS" if row["pass"] else ""), flush=True)
    summary = {c["name"]: {k: c[k] for k in ("kind", "we_in", "we_out", "we_console", "psnr_out") if k in c} for c in clips}
    Path(args.out).write_text(json.dumps({"bundle": args.bundle, "clips": summary, "grid": rows}, indent=1) + "\n")
    print("passing:", [(r["strength"], r["tau"]) for r in rows if r["pass"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())

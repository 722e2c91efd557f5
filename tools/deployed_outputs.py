"""Write what the runtime shows for every image of a folder: an ONNX model run as deployed (imaging
region detected, cropped, [-1, 1], reflect-padded to the stride, model, pasted back inside the region;
``sonoedge.train.realcheck.enhance_as_deployed``), same relative names, for ``sonoedge evaluate``.

    python tools/deployed_outputs.py --onnx runtime/default_bundle/model.onnx --split split.json \
        --data phantom-256 --out outputs/new-default           # the test split's low images
    sonoedge evaluate --reference test/high --low test/low --method new=outputs/new-default ...

With ``--split`` (a `sonoedge data split` file) only that file's ``--which`` split (default test) is
run, and its low and high images are linked under ``--out``/../test/{low,high} for ``evaluate``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--data", required=True, help="a paired dataset folder (low/, high/)")
    parser.add_argument("--split", help="a split JSON from `sonoedge data split`")
    parser.add_argument("--which", default="test")
    parser.add_argument("--out", required=True, help="new folder for the outputs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import cv2
    import onnxruntime as ort

    from sonoedge.runtime.readers import read_image
    from sonoedge.train.datasets import list_images
    from sonoedge.train.realcheck import enhance_as_deployed

    data, out = Path(args.data), Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"{out} is not empty; choose a new folder", file=sys.stderr)
        return 2
    names = json.loads(Path(args.split).read_text())["splits"][args.which] if args.split else list_images(data / "low")
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        frame = read_image(data / "low" / name)
        result, _ = enhance_as_deployed(frame, lambda x: session.run(None, {feed: x})[0])
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), result)
    if args.split:
        for side in ("low", "high"):
            folder = out.parent / args.which / side
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                if not (folder / name).exists():
                    os.link(data / side / name, folder / name)
    print(f"wrote {len(names)} outputs to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Side-by-side figures of the embedded default on real frames of each device kind: input | old
default | new default, imaging region only, small JPEGs for docs/results/default_figures/.

    git show f935cf9:runtime/default_bundle/model.onnx > old.onnx     # the phantom-only default
    python tools/default_figures.py --old old.onnx --new runtime/default_bundle/model.onnx \
        --out docs/results/default_figures

Every frame is from ../shared/data/realus, none of it trained on (hip_spj and the clips calibrate
the INT8 model; these figures run the fp32 models). Each model runs as deployed
(``sonoedge.train.realcheck.enhance_as_deployed``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (figure name, device kind, file under realus, frame index for clips)
FRAMES = (
    ("console_hc18_150", "GE Voluson (console), fetal head, HC18 150_HC", "hc18/150_HC.png", 0),
    ("console_hc18_050", "GE Voluson (console), fetal head, HC18 050_HC", "hc18/050_HC.png", 0),
    ("handheld_butterfly", "Butterfly iQ still, resolution phantom", "itkpocus_handheld/butterfly_axial-lateral-resolution-2020.png", 0),
    ("handheld_clarius", "Clarius still, eye", "itkpocus_handheld/clarius-ocular-image.png", 0),
    ("handheld_interson", "Interson still", "itkpocus_handheld/interson-image.jpg", 0),
    ("handheld_sonivate", "Sonivate still, anechoic phantom", "itkpocus_handheld/sonivate-anechoic_1-1.nrrd", 0),
    ("handheld_sonoque", "Sonoque still, resolution phantom", "itkpocus_handheld/sonoque_axial-lateral-resolution-2020.dcm", 0),
    ("handheld_sonosite", "SonoSite still, eye", "itkpocus_handheld/sonosite-anon-eye1.jpg", 0),
    ("clip_butterfly", "Butterfly iQ clip, ocular phantom, frame 180", "clips/itkpocus/butterfly-ocular-phantom.mp4", 180),
    ("clip_ultrasonix_linear", "Ultrasonix L14 sequence, bone and soft tissue, frame 10", "clips/plus_toolkit/frames_png/BoneUltrasound_L14_frame010.png", 0),
    ("clip_bk_curvilinear", "BK curvilinear sequence", "clips/plus_toolkit/frames_png/BkCurvilinearScanConvertedData_frame000.png", 0),
    ("hip_spj", "hip scan device, standard plane", "hip_spj/standard_ultrasound/standard_10.png", 0),
)
HEIGHT = 220  # panel height in pixels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True)
    parser.add_argument("--new", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--realus", default=str(ROOT.parent / "shared" / "data" / "realus"))
    args = parser.parse_args()
    realus = Path(args.realus)
    if not realus.is_dir():
        print(f"{realus} is absent: no figures (the real frames are not part of the repository)")
        return 0
    import cv2
    import numpy as np
    import onnxruntime as ort

    from sonoedge.runtime.readers import iter_frames
    from sonoedge.runtime.region import detect_region
    from sonoedge.train.realcheck import enhance_as_deployed

    def session(path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return lambda x: s.run(None, {name: x})[0]

    old, new = session(args.old), session(args.new)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stem, label, rel, index in FRAMES:
        path = realus / rel
        if not path.exists():
            print(f"skip {rel}: not found")
            continue
        frames = iter_frames(path)
        for i, frame in enumerate(frames):
            if i == index:
                break
        x0, y0, x1, y1 = detect_region(frame).bbox
        panels = [frame] + [enhance_as_deployed(frame, m)[0] for m in (old, new)]
        scale = HEIGHT / (y1 - y0)
        row = []
        for image, title in zip(panels, ("input", "old default (phantom only)", "new default")):
            crop = cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), (max(1, round((x1 - x0) * scale)), HEIGHT),
                              interpolation=cv2.INTER_AREA)
            crop = cv2.copyMakeBorder(crop, 18, 0, 0, 4, cv2.BORDER_CONSTANT, value=255)
            cv2.putText(crop, title, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
            row.append(crop)
        figure = cv2.copyMakeBorder(np.hstack(row), 18, 0, 0, 0, cv2.BORDER_CONSTANT, value=255)
        cv2.putText(figure, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
        cv2.imwrite(str(out / f"{stem}.jpg"), figure, [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f"wrote {len(FRAMES)} figures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

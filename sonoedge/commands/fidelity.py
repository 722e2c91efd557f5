"""``sonoedge fidelity``: did the enhancement keep the anatomy? No reference needed.

    sonoedge fidelity INPUT ENHANCED [--out DIR]             # a file and its enhancement, or two folders
    sonoedge fidelity --run FILES... [--bundle B] [--out DIR] # run a bundle (default: the embedded one)
    sonoedge fidelity INPUT ENHANCED --reference REF         # the same measures against a better image

Measures (runtime/fidelity.py) of each enhanced frame against its input, inside the imaging
region: structures erased and invented, the low-pass echogenicity map's correlation and bias, the
share of bright pixels turned black, signed contrast kept; on HC18 fetal-head frames (``NNN_HC.png``)
with the experts' outlines (``--annotations``, default ``annotations/hc18`` beside the realus
folder) the skull's contrast kept and the head-circumference difference. Each frame gets the
fidelity gate's verdict (runtime/bundle/gates.py).

Folders pair files by their path relative to the folder, without extension (``enhance`` keeps a
folder input's file names). Files with several frames give ``--frames N`` frames each, spread
evenly (default 1: the middle frame); with ``--run`` the frames go through the stream enhancer,
exactly as ``sonoedge enhance`` and the daemon run them, one enhancer per file so no file borrows
another's imaging region.

Prints a per-frame table and a per-source summary (``--json``: the JSON instead). ``--out DIR``
writes fidelity.json, table.md and overlays/ (input | enhanced with erased structures outlined in
magenta, invented ones in cyan): a new or empty folder, or with ``--overwrite`` an earlier output of
this command; never an input folder. Exit 0 when every frame passes the gate, 3 when any fails.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sonoedge.commands._args import add_model_arguments

OUTPUTS = ("fidelity.json", "table.md")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="INPUT ENHANCED (files or folders), or with --run the files/folders to enhance")
    parser.add_argument("--run", action="store_true",
                        help="run the model (--bundle, default the embedded one) on PATHs instead of reading enhanced files")
    add_model_arguments(parser)
    parser.add_argument("--reference", metavar="REF",
                        help="a better image (file or folder paired like ENHANCED): measure input and enhanced against it")
    parser.add_argument("--frames", type=int, default=1, metavar="N", help="frames per multi-frame file (default 1, the middle one)")
    parser.add_argument("--annotations", metavar="DIR",
                        help="HC18 annotations folder (NNN_HC_Annotation.png + the pixel-size CSV); "
                             "default: annotations/hc18 beside the realus folder, when present")
    parser.add_argument("--out", metavar="DIR", help="write fidelity.json, table.md and overlays/ here")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier output folder of this command")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _files(path: Path) -> dict[str, Path]:
    """{relative path without extension: file} of a file or a folder (recursively)."""
    from sonoedge.runtime.bundle.fidelity_check import readable_files

    if path.is_file():
        return {path.stem: path}
    return {p.relative_to(path).with_suffix("").as_posix(): p for p in readable_files(path)}


def _pairs(inputs: Path, others: Path, label: str) -> list[tuple[str, Path, Path]]:
    from sonoedge.runtime.errors import InputError

    if inputs.is_file() and others.is_file():
        return [(inputs.name, inputs, others)]
    if inputs.is_file() != others.is_file():
        raise InputError(f"INPUT {inputs} and {label} {others} must both be files or both be folders")
    a, b = _files(inputs), _files(others)
    missing = sorted(set(a) - set(b))
    if missing:
        raise InputError(f"{label} folder {others} has no file named like '{missing[0]}' of {inputs} "
                         f"({len(missing)} of {len(a)} missing); pair folders that hold the same file names")
    return [(a[k].relative_to(inputs).as_posix(), a[k], b[k]) for k in sorted(a)]


def _annotations(args: argparse.Namespace):
    from sonoedge.runtime.bundle.fidelity_check import Hc18Annotations, default_realus

    if args.annotations:
        return Hc18Annotations(args.annotations)
    return Hc18Annotations.beside(default_realus())


def _jobs(args: argparse.Namespace):
    """Yield (frame name, FidelityFrame, enhanced uint8, reference uint8 or None) per frame."""
    from sonoedge.runtime.bundle.fidelity_check import FidelityFrame, frame_indices, read_frames
    from sonoedge.runtime.errors import InputError

    notes = _annotations(args)

    def frame(name: str, path: Path, index: int, image):
        f = FidelityFrame(f"{name}#{index}", image)
        found = notes.lookup(path.name, image.shape) if notes is not None else None
        if found is not None:
            f.outline, f.pixel_mm = found
        return f

    if args.run:
        from sonoedge.commands._args import enhancer_config
        from sonoedge.runtime.bundle.model import load_model
        from sonoedge.runtime.frames import Frame, to_grey
        from sonoedge.runtime.stream.enhancer import Enhancer

        cfg = enhancer_config(args)
        model = load_model(cfg)
        try:
            for given in map(Path, args.paths):
                for rel, path in sorted(_files(given).items()):
                    name = f"{given.name}/{path.relative_to(given).as_posix()}" if given.is_dir() else path.name
                    indices = frame_indices(path, args.frames)
                    enhancer = Enhancer(model, cfg)  # one per file: its own imaging region
                    for index, image in read_frames(path, indices).items():
                        out = enhancer(Frame(image, index))
                        if out.passthrough:
                            raise InputError(f"{name}#{index}: the model did not run ({out.meta.get('passthrough_reason')})")
                        yield frame(name, path, index, to_grey(image)), to_grey(out.image), None
        finally:
            model.close()
        return
    if len(args.paths) != 2:
        raise InputError(f"give INPUT and ENHANCED (2 paths), got {len(args.paths)}; or pass --run to enhance PATHs here")
    inputs, enhanced = Path(args.paths[0]), Path(args.paths[1])
    refs = dict((n, r) for n, _, r in _pairs(inputs, Path(args.reference), "REF")) if args.reference else {}
    for name, a, b in _pairs(inputs, enhanced, "ENHANCED"):
        indices = frame_indices(a, args.frames)
        images, outs = read_frames(a, indices), read_frames(b, indices)
        ref_images = read_frames(refs[name], indices) if name in refs else {}
        for index in indices:
            yield frame(name, a, index, images[index]), outs[index], ref_images.get(index)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import cv2

    from sonoedge.runtime import fidelity
    from sonoedge.runtime.atomic import atomic_dir
    from sonoedge.runtime.bundle.fidelity_check import markdown_rows, markdown_summary, score, summary_by_source
    from sonoedge.runtime.errors import GateError, InputError
    from sonoedge.runtime.outputs import check_whole_folder

    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    if args.reference and args.run:
        raise InputError("--reference pairs INPUT ENHANCED with a better image; it does not combine with --run")
    inputs = [*args.paths, args.reference, args.annotations, args.bundle or None]
    if args.out:
        check_whole_folder(args.out, inputs, args.overwrite)
    rows, pictures = [], {}
    for frame, out, ref in _jobs(args):
        row, report = score(frame, out)
        if ref is not None:  # the same measures against the better image: input's baseline, then the output's
            for label, image in (("input", frame.image), ("enhanced", out)):
                against = fidelity.measure(ref, image)
                row[f"vs_reference_{label}"] = against.to_dict(structures=False)
        rows.append(row)
        if args.out:
            pictures[row["frame"]] = fidelity.overlay(frame.image, out, report)
        if not args.json:
            print(f"fidelity: {row['frame']}: {row['verdict']}", file=sys.stderr)
    summary = summary_by_source(rows)
    table = markdown_rows(rows) + "\n\n" + markdown_summary(summary) + "\n"
    if args.json:
        print(json.dumps({"frames": rows, "summary": summary}, indent=1))
    else:
        print(table)
    if args.out:
        with atomic_dir(args.out, replace=args.overwrite, mark="fidelity") as root:
            (root / "fidelity.json").write_text(json.dumps({"frames": rows, "summary": summary}, indent=1) + "\n")
            (root / "table.md").write_text(table)
            (root / "overlays").mkdir()
            for name, picture in pictures.items():
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.replace("/", "__"))
                cv2.imwrite(str(root / "overlays" / f"{safe}.png"), picture)
        print(f"wrote {args.out}: fidelity.json, table.md, overlays/ ({len(pictures)} pictures)", file=sys.stderr)
    failing = [r["frame"] for r in rows if r["verdict"] == "fail"]
    if failing:
        raise GateError(f"{len(failing)} of {len(rows)} frame(s) fail the fidelity gate, e.g. {failing[0]}: "
                        f"{rows[[r['frame'] for r in rows].index(failing[0])]['failures'][0]}")
    return 0

"""sonoedge: GAN enhancement for portable ultrasound, from workstation training to the device.

Every subcommand is one module ``sonoedge/commands/<name>.py`` that exposes two functions:

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int | None

A command is thin: it parses, calls one library function and reports; shared argument groups are
in ``commands/_args.py``, built from the library's config dataclasses. Command modules import only
light things at module level, so ``sonoedge --help`` stays fast and works on a device with the
base install; heavy imports happen inside ``run``. Nothing outside ``sonoedge/`` imports a command. A
:class:`~sonoedge.runtime.errors.SonoedgeError` ends in one line on stderr and a non-zero exit, and
so does an operating-system error about a path (a full disk, a read-only folder).

SIGINT and SIGTERM end a one-shot command the same way: KeyboardInterrupt unwinds it (the pipeline
joins its threads, sinks remove their partial outputs), then exit 130. ``serve`` installs its own
handlers (a stop event) and replaces these.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

from sonoedge import __version__
from sonoedge.runtime.errors import SonoedgeError

# "group command" names nest: `sonoedge data phantom`. Value: (module, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "data phantom": ("sonoedge.commands.data_phantom", "simulate paired handheld/high-end B-mode images and clips"),
    "data inspect": ("sonoedge.commands.data_inspect", "read any ultrasound file and show its frames and imaging region"),
    "data split": ("sonoedge.commands.data_split", "write the deterministic train/val/test split of a dataset"),
    "data degrade": ("sonoedge.commands.data_degrade", "degrade high-end frames with a handheld device model: paired real-anatomy data"),
    "evaluate": ("sonoedge.commands.evaluate", "score outputs (or a checkpoint) against references: Table 2 layout"),
    "train": ("sonoedge.commands.train", "train a generator from a preset (CycleGAN+PL, SR)"),
    "distill": ("sonoedge.commands.distill", "distill a teacher checkpoint into an INT8-ready edge student"),
    "sr": ("sonoedge.commands.sr", "4x self-supervised super-resolution of an image (Liu et al.)"),
    "export": ("sonoedge.commands.export", "export a checkpoint to a device bundle with accuracy gates"),
    "requantize": ("sonoedge.commands.requantize", "rebuild a bundle's INT8 model from its fp32 ONNX on real frames"),
    "fidelity": ("sonoedge.commands.fidelity", "no-reference fidelity: structures erased or invented by an enhancement, per frame"),
    "verify": ("sonoedge.commands.verify", "re-run a bundle's reference frames here and check its gates"),
    "build-engine": ("sonoedge.commands.build_engine", "build (and cache) the TensorRT engine of a bundle on this device"),
    "device-check": ("sonoedge.commands.device_check", "on an NVIDIA device: build, gate-check and time every precision of a bundle"),
    "devices": ("sonoedge.commands.devices", "list device profiles and detect the current device"),
    "enhance": ("sonoedge.commands.enhance", "enhance a file (image, clip, DICOM, sequence) with a bundle"),
    "serve": ("sonoedge.commands.serve", "run the enhancer daemon from a config file"),
    "bench": ("sonoedge.commands.bench", "benchmark a bundle: pure backend vs full pipeline fps"),
    "demo": ("sonoedge.commands.demo", "enhance a phantom clip (or a file) with the embedded default bundle"),
    "report": ("sonoedge.commands.report", "print a bundle's accuracy table (gates, errors, calibration) from its manifest"),
    "bench-export": ("sonoedge.commands.bench_export", "ONNX Runtime latency of each precision of a bundle beside PyTorch"),
    "bench-train": ("sonoedge.commands.bench_train", "training speed of presets: iterations/s and the LPIPS share"),
    "bench-sr": ("sonoedge.commands.bench_sr", "CPU cost of SR inference and zero-shot training"),
    "sr-eval": ("sonoedge.commands.sr_eval", "Liu et al.'s SR evaluation on the real HC18 frames (bicubic, zero-shot, dataset)"),
    "curves": ("sonoedge.commands.curves", "plot a training run's validation curves (Figure 3 layout)"),
    "style": ("sonoedge.commands.style", "neural style transfer of an image or folder (Menini): optimisation or a trained translator"),
}


# optional packages and the extra that installs each: a command that needs one it cannot import
# ends in one sentence saying how to install it, wherever the import happens
EXTRAS = {"torch": "train", "torchvision": "train", "lpips": "train", "tensorboard": "train",
          "matplotlib": "train", "skimage": "dev", "onnx": "export", "onnxconverter_common": "export",
          "onnxslim": "export", "tensorrt": "tensorrt", "cuda": "tensorrt", "pycuda": "tensorrt"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sonoedge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"sonoedge {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        words = name.split()
        subparsers = top
        if len(words) == 2:
            if words[0] not in groups:
                group = top.add_parser(words[0], help=f"{words[0]} tools")
                groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            subparsers = groups[words[0]]
        sub = subparsers.add_parser(words[-1], help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one command; SIGTERM unwinds like Ctrl-C while it runs (the default would kill the
    process mid-write), and the caller's handlers are restored after."""
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(args)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _main(args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _main(args: argparse.Namespace) -> int:
    try:
        code = args._run(args)
    except SonoedgeError as exc:
        print(f"sonoedge {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if package not in EXTRAS:
            raise
        print(f"sonoedge {args.command}: error: this command needs the Python package '{package}', which is not "
              f"installed; install it with: pip install 'sonoedge[{EXTRAS[package]}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sonoedge {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.filename is None:
            raise
        print(f"sonoedge {args.command}: error: cannot use {exc.filename}: {exc.strerror or exc}; "
              "choose another path or fix its permissions", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

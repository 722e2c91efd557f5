"""The package layout contract of DESIGN.md: one namespace, light runtime, CLI help everywhere."""
import subprocess
import sys

from sonoedge.cli import COMMANDS, build_parser


def test_runtime_import_does_not_import_torch():
    code = (
        "import sys, sonoedge.runtime, sonoedge.runtime.frames, sonoedge.runtime.manifest, "
        "sonoedge.runtime.backends, sonoedge.runtime.streams, sonoedge.cli\n"
        "import pkgutil, importlib, sonoedge.runtime as r\n"
        "for m in pkgutil.walk_packages(r.__path__, 'sonoedge.runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'lpips', 'tensorrt', 'pycuda', 'onnx'})\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_generic_top_level_names():
    for name in ("train", "runtime", "export", "devices"):
        found = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, cwd="/")
        assert found.returncode != 0, f"a generic top-level package '{name}' is installed"


def test_every_command_has_help(capsys):
    parser = build_parser()
    for name in COMMANDS:
        try:
            parser.parse_args([*name.split(), "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        out = capsys.readouterr().out
        assert "usage:" in out


def test_a_missing_optional_package_is_one_sentence_naming_the_extra(monkeypatch, capsys):
    """`sonoedge train` on a base install (no torch): no traceback, the extra to install."""
    import sonoedge.cli as cli

    def needs_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    parser = build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(_run=needs_torch)
    assert cli.main(["devices"]) == 2
    err = capsys.readouterr().err
    assert "'torch'" in err and "sonoedge[train]" in err and "Traceback" not in err

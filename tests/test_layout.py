"""The package layout contract of DESIGN.md: one namespace, light runtime, CLI help everywhere."""
import subprocess
import sys

from sonoedge.cli import COMMANDS, build_parser

# The runtime imports none of these (DESIGN.md, Layout: the base install is the runtime alone, as
# small as it can be): scipy and Pillow come with [train], scikit-image with [dev]; tqdm is in the base
# install only for the phantom simulator that `sonoedge demo` runs, never for the runtime.
HEAVY_FOR_RUNTIME = ("torch", "lpips", "tensorrt", "pycuda", "cuda", "onnx", "scipy", "tqdm", "skimage", "PIL")


def test_runtime_import_does_not_import_torch():
    code = (
        "import sys, sonoedge.runtime, sonoedge.runtime.frames, sonoedge.runtime.bundle.manifest, "
        "sonoedge.runtime.backends, sonoedge.runtime.stream.base, sonoedge.cli\n"
        "import pkgutil, importlib, sonoedge.runtime as r\n"
        "for m in pkgutil.walk_packages(r.__path__, 'sonoedge.runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY_FOR_RUNTIME)!r})\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_runtime_module_imports_a_train_only_package():
    """Read from the source, function-level imports included: a lazy `from scipy import ndimage` in
    a runtime function would fail on a base install only when that function runs."""
    bad = [f"{path.relative_to(REPO)}: imports {imported}" for name, path in _modules().items()
           if _under(name, "sonoedge.runtime") for imported in sorted(imports_of(name, path))
           if imported.split(".")[0] in HEAVY_FOR_RUNTIME and imported.split(".")[0] not in ("tensorrt", "pycuda", "onnx")]
    assert not bad, "runtime modules import packages outside the base install:\n" + "\n".join(bad)


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


# -- dependency rules (DESIGN.md, Layout) -----------------------------------------------------------
# Read from the source with ast, function-level imports included, so a lazy import breaks a rule too.

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FOLDERS = {"sonoedge": "sonoedge", "sonoedge.train": "train", "sonoedge.export": "export",
           "sonoedge.runtime": "runtime", "sonoedge.devices": "devices"}
WINGS = ("backends", "bundle", "stream", "service")  # bottom to top: a wing imports only those before it


def _modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for package, folder in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("").parts
            if package == "sonoedge" and rel and rel[0] in {f for f in FOLDERS.values()}:
                continue
            name = ".".join((package, *rel))
            out[name.removesuffix(".__init__")] = path
    return out


def imports_of(name: str, path: Path) -> set[str]:
    """Every module ``path`` imports (``from X import y`` counts as X and X.y), relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(modules: dict[str, Path] | None = None) -> list[str]:
    """One line per import that breaks a dependency rule; [] when the layout holds."""
    modules = _modules() if modules is None else modules
    bad = []
    for name, path in modules.items():
        for imported in sorted(imports_of(name, path)):
            rule = _broken_rule(name, imported)
            if rule:
                bad.append(f"{path.relative_to(REPO)}: imports {imported} ({rule})")
    return bad


def _broken_rule(name: str, imported: str) -> str | None:
    library = not _under(name, "sonoedge.commands") and name != "sonoedge.cli" and name != "sonoedge.__main__"
    if library and (_under(imported, "sonoedge.commands") or imported in ("sonoedge.cli", "argparse")):
        return "the library never imports a command or argparse"
    if _under(name, "sonoedge.runtime") and (_under(imported, "sonoedge.train") or _under(imported, "sonoedge.export")):
        return "nothing under runtime imports train or export"
    if _under(name, "sonoedge.devices") and any(_under(imported, f"sonoedge.{p}") for p in ("train", "export")):
        return "devices stands on the runtime kernel only"
    if _under(name, "sonoedge.devices") and any(_under(imported, f"sonoedge.runtime.{w}") for w in WINGS):
        return "devices stands on the runtime kernel only"
    if not _under(name, "sonoedge.runtime"):
        return None
    rank = _wing_rank(name)
    other = _wing_rank(imported) if _under(imported, "sonoedge.runtime") else -1
    if other > rank:
        where = "the runtime kernel" if rank == 0 else f"runtime/{WINGS[rank - 1]}"
        return f"{where} imports no wing above it (order: kernel, {', '.join(WINGS)})"
    return None


def _wing_rank(module: str) -> int:
    """0 for the runtime kernel, 1.. for the wings in WINGS order."""
    parts = module.split(".")
    return WINGS.index(parts[2]) + 1 if len(parts) > 2 and parts[2] in WINGS else 0


def test_dependencies_point_one_way():
    bad = violations()
    assert not bad, "dependency rules broken:\n" + "\n".join(bad)


@pytest.mark.parametrize("module, imported, rule", [
    ("sonoedge.runtime.stream.enhancer", "sonoedge.runtime.service.daemon", "wing above"),
    ("sonoedge.runtime.backends.onnxruntime", "sonoedge.runtime.bundle.manifest", "wing above"),
    ("sonoedge.runtime.frames", "sonoedge.runtime.stream.base", "wing above"),
    ("sonoedge.runtime.bundle.verify", "sonoedge.train.checkpoint", "train or export"),
    ("sonoedge.export.bundle", "argparse", "argparse"),
    ("sonoedge.train.trainer", "sonoedge.commands.train", "a command"),
    ("sonoedge.devices.detect", "sonoedge.runtime.stream.shm", "kernel only"),
])
def test_each_rule_catches_its_violation(module, imported, rule):
    assert rule in (_broken_rule(module, imported) or "")


def test_allowed_directions_pass():
    for module, imported in [("sonoedge.runtime.service.daemon", "sonoedge.runtime.stream.pipeline"),
                             ("sonoedge.runtime.bundle.verify", "sonoedge.runtime.backends"),
                             ("sonoedge.export.bundle", "sonoedge.train.checkpoint"),
                             ("sonoedge.commands.export", "argparse"),
                             ("sonoedge.runtime.bundle.engine", "sonoedge.devices.profiles")]:
        assert _broken_rule(module, imported) is None, (module, imported)


def test_every_command_module_is_registered():
    registered = {module for module, _ in COMMANDS.values()}
    on_disk = {f"sonoedge.commands.{p.stem}" for p in (REPO / "sonoedge" / "commands").glob("*.py")
               if not p.stem.startswith("_")}
    assert on_disk == registered, f"unregistered: {on_disk - registered}; missing: {registered - on_disk}"


def test_no_comment_cites_an_issue_number():
    """Comments give reasons or DESIGN.md sections; a reader has no issue tracker."""
    import re

    pattern = re.compile(r"\bissue [0-9]|\bH[0-9]\b")
    hits = [f"{path.relative_to(REPO)}:{i}" for path in _modules().values()
            for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_the_command_line_builds_without_the_training_and_export_extras():
    """The base install (the README's first line) has no torch, onnx or lpips: building the parser of
    every command must not import them (a command imports its heavy library in ``run``, not in
    ``add_arguments``)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "for name in ('torch', 'torchvision', 'onnx', 'onnxscript', 'lpips', 'scipy', 'skimage'):\n"
            "    sys.modules[name] = None\n"
            "from sonoedge.cli import build_parser\n"
            "build_parser()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]

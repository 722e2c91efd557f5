"""The TensorRT API tier: sonoedge's TensorRT code against the real Python bindings of each TensorRT
generation it serves, without a GPU.

The bindings of each release are on the package index (``tensorrt-cu12-bindings`` /
``tensorrt-cu13-bindings``, about 1 MB). This module downloads them once (``pip download --no-deps``
into ``$SONOEDGE_TRT_WHEELS``, default ``~/.cache/sonoedge/trt-wheels``), compiles a stub library
that exports the C symbols the bindings import from libnvinfer (``nm -D --undefined-only``; no-op
functions), imports each version in a subprocess against it, and checks there every TensorRT name
sonoedge uses. Nothing TensorRT can run here; every class, enum member, method, property and
keyword argument can be looked up.

The uses are COLLECTED from the code, not listed: an ast walk of runtime/backends/tensorrt/*.py and
runtime/bundle/engine.py finds attribute chains on the ``trt`` module object and on objects whose
TensorRT class is known (made by a TensorRT factory call, or a parameter named like one:
:data:`CREATORS`, :data:`PARAMETERS`), methods overridden in subclasses of TensorRT classes, and
the builder flags ``getattr(trt.BuilderFlag, flag)`` can take (every BuildSpec that build_spec makes
for every device profile and precision). Each use is mapped to the code path that runs it
(:data:`FUNCTION_PATHS`, :data:`CONDITION_PATHS`) and checked against the versions that path serves
(:data:`PATH_VERSIONS`): the builder-flag path (TensorRT 8.5-10.0, --legacy on 10.x) against 10.3,
the strongly typed path and everything shared against 10.3 and 11.x. 8.x has no bindings on the
package index; the few uses only 8.x runs are counted and reported, not checked.

Offline (no package index) the tier skips with that reason; CI has the index, so it runs there.
"""
from __future__ import annotations

import ast
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
SOURCES = sorted((REPO / "runtime" / "backends" / "tensorrt").glob("*.py")) + [REPO / "runtime" / "bundle" / "engine.py"]
CHECK_SCRIPT = Path(__file__).with_name("api_check.py")

# TensorRT generations checked: JetPack 6's 10.3 (the builder-flag API still whole) and the newest 11.
BINDINGS = {"10.3": "tensorrt-cu12-bindings==10.3.0", "11": "tensorrt-cu13-bindings==11.4.0.106"}
PATH_VERSIONS = {"all": ("10.3", "11"), "strongly_typed": ("10.3", "11"), "builder_flags": ("10.3",), "trt8": ()}

# TensorRT class of a value, by the factory call that made it ...
CREATORS = {"Builder": "Builder", "create_network": "INetworkDefinition", "create_builder_config": "IBuilderConfig",
            "OnnxParser": "OnnxParser", "create_optimization_profile": "IOptimizationProfile", "Runtime": "Runtime",
            "deserialize_cuda_engine": "ICudaEngine", "create_execution_context": "IExecutionContext",
            "Logger": "Logger", "create_timing_cache": "ITimingCache", "get_layer": "ILayer"}
# ... or by the name of a parameter that receives one (helpers of build_serialized)
PARAMETERS = {"builder": "Builder", "network": "INetworkDefinition", "config": "IBuilderConfig"}
# code path of a function, or of a block under an `if` whose test reads so
FUNCTION_PATHS = {"_attach_calibrator": "builder_flags", "make_entropy_calibrator": "builder_flags",
                  "_place_on_dla": "builder_flags"}
CONDITION_PATHS = {"spec.mode == 'strongly_typed'": "strongly_typed", "version[0] < 10": "trt8",
                   "spec.calibrator": "builder_flags", "spec.dla_core is not None": "builder_flags"}


# -- collecting the uses ---------------------------------------------------------------------------
def _chain(node: ast.AST) -> tuple[str, list[str]] | None:
    """`a.b.c` -> ("a", ["b", "c"]); `self.x.y` -> ("self.x", ["y"]); None for anything else."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    names.reverse()
    if node.id == "self" and names:
        return "self." + names[0], names[1:]
    return node.id, names


class _Collector(ast.NodeVisitor):
    def __init__(self, path: Path):
        self.path, self.uses, self.dynamic = path, [], []
        self.func, self.conds = "", []
        self.types: dict[str, str] = {}  # variable (or self.attr) -> TensorRT class
        self.self_types: dict[str, str] = {}

    def _path(self) -> str:
        for cond in reversed(self.conds):
            if cond in CONDITION_PATHS:
                return CONDITION_PATHS[cond]
        return FUNCTION_PATHS.get(self.func, "all")

    def _add(self, owner: str, chain: list[str], node: ast.AST, call: ast.Call | None = None) -> None:
        if not chain or chain == ["__version__"]:
            return
        if owner != "trt":
            chain = chain[:1]  # an instance's attribute; what it returns is not typed here
        unbound = bool(call and call.args and isinstance(call.args[0], ast.Name) and call.args[0].id == "self")
        self.uses.append({"owner": owner, "chain": chain, "call": call is not None,
                          "nargs": len(call.args) - unbound if call else 0,  # Base.__init__(self): self is bound
                          "kwargs": [k.arg for k in call.keywords if k.arg] if call else [],
                          "where": f"{self.path.relative_to(REPO)}:{node.lineno}", "path": self._path()})

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer = (self.func, dict(self.types))
        self.func = node.name if node.name in FUNCTION_PATHS or not outer[0] else outer[0]
        for arg in node.args.args:
            if arg.arg in PARAMETERS:
                self.types[arg.arg] = PARAMETERS[arg.arg]
        self.generic_visit(node)
        self.func, self.types = outer

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:  # subclasses of TensorRT classes: the methods they override must exist
            resolved = self._resolve(base)
            if resolved and resolved[0] == "trt" and len(resolved[1]) == 1:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                        self._add(resolved[1][0], [item.name], item)
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self.conds.append(ast.unparse(node.test))
        for child in node.body:
            self.visit(child)
        self.conds.pop()
        for child in node.orelse:
            self.visit(child)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        made = self._made(node.value)
        for target in node.targets:
            chain = _chain(target)
            if chain and not chain[1]:
                if made:
                    (self.self_types if chain[0].startswith("self.") else self.types)[chain[0]] = made
                elif isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "getattr":
                    resolved = self._resolve(node.value)  # base = getattr(trt, "IProgressMonitor", None)
                    if resolved:
                        self.types[chain[0]] = "trt:" + ".".join(resolved[1])

    def _made(self, value: ast.AST) -> str | None:
        if isinstance(value, ast.Call):
            chain = _chain(value.func)
            if chain and (chain[1] or [chain[0]])[-1] in CREATORS:
                return CREATORS[(chain[1] or [chain[0]])[-1]]
        return None

    def _resolve(self, node: ast.AST) -> tuple[str, list[str]] | None:
        """(owner, chain) of a TensorRT expression: "trt" + names, or a class name + names."""
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr" and len(node.args) >= 2:
            inner = self._resolve(node.args[0])
            if inner and isinstance(node.args[1], ast.Constant):
                return inner[0], [*inner[1], node.args[1].value]
            return None
        chain = _chain(node)
        if chain is None:
            return None
        root, names = chain
        if root == "trt":
            return "trt", names
        kind = self.types.get(root) or self.self_types.get(root)
        if kind and kind.startswith("trt:"):
            return "trt", [*kind[4:].split("."), *names]
        return (kind, names) if kind else None

    def visit_Call(self, node: ast.Call) -> None:
        if ast.unparse(node.func) == "getattr" and len(node.args) >= 2:
            inner = self._resolve(node.args[0])
            if inner and not isinstance(node.args[1], ast.Constant):
                self.dynamic.append((inner, ast.unparse(node.args[1]), self._path(), f"{self.path.name}:{node.lineno}"))
            elif inner:
                self._add(inner[0], [*inner[1], node.args[1].value], node)
            for arg in node.args[2:]:
                self.visit(arg)
            return
        resolved = self._resolve(node.func)
        if resolved:
            self._add(*resolved, node, call=node)
            self._visit_below(node.func)
        else:
            self.visit(node.func)
        for arg in [*node.args, *node.keywords]:
            self.visit(arg)

    def _visit_below(self, func: ast.AST) -> None:
        """Uses inside the callee expression other than the chain itself (e.g. a subscript's index)."""
        node = func
        while isinstance(node, ast.Attribute):
            node = node.value
        if not isinstance(node, ast.Name):
            self.visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        resolved = self._resolve(node)
        if resolved:
            self._add(*resolved, node)
            return
        self.generic_visit(node)


def collect_uses() -> tuple[list[dict], list[tuple]]:
    """Every TensorRT use in the sources (deduplicated per path), and the dynamic getattr calls."""
    uses, dynamic = [], []
    for path in SOURCES:
        collector = _Collector(path)
        tree = ast.parse(path.read_text())
        for node in tree.body:  # class attribute types first: self.engine is used in other methods
            if isinstance(node, ast.ClassDef):
                pre = _Collector(path)
                pre.visit(node)
                collector.self_types.update(pre.self_types)
        collector.visit(tree)
        uses += collector.uses
        dynamic += collector.dynamic
    seen, unique = set(), []
    for use in uses:
        key = (use["owner"], tuple(use["chain"]), use["call"], use["nargs"], tuple(use["kwargs"]), use["path"])
        if key not in seen:
            seen.add(key)
            unique.append(use)
    return unique, dynamic


def builder_flag_uses() -> list[dict]:
    """The names `getattr(trt.BuilderFlag, flag)` takes: every spec build_spec makes, per path."""
    from sonoedge.devices.profiles import load_profiles
    from sonoedge.runtime.bundle import default_bundle_path
    from sonoedge.runtime.bundle.engine import build_spec
    from sonoedge.runtime.bundle.manifest import load_manifest

    _, manifest = load_manifest(default_bundle_path())
    found: dict[tuple[str, str], str] = {}
    for profile in load_profiles().values():
        if not profile.tensorrt:
            continue
        for precision in manifest.precisions:
            specs = [build_spec(manifest, profile, precision, v, legacy=v == "10.0") for v in ("8.6", "10.0", "10.3", "11.0")]
            if profile.dla_cores and precision != "fp32":
                specs += [build_spec(manifest, profile, precision, "10.0", True, 0, fallback) for fallback in (False, True)]
            for spec in specs:
                for flag in (*spec.flags, *spec.clear_flags):
                    found[(flag, spec.mode)] = f"build_spec({profile.name}, {precision}, {spec.mode})"
    return [{"owner": "trt", "chain": ["BuilderFlag", flag], "call": False, "nargs": 0, "kwargs": [], "where": where,
             "path": mode} for (flag, mode), where in sorted(found.items())]


def all_uses() -> list[dict]:
    uses, dynamic = collect_uses()
    for (owner, chain), expr, path, where in dynamic:
        assert (owner, chain) == ("trt", ["BuilderFlag"]), f"{where}: cannot resolve getattr({owner}.{chain}, {expr})"
    return uses + (builder_flag_uses() if dynamic else [])


# -- the bindings ---------------------------------------------------------------------------------
def _wheel_cache() -> Path:
    return Path(os.environ.get("SONOEDGE_TRT_WHEELS", Path.home() / ".cache" / "sonoedge" / "trt-wheels"))


def _bindings(version: str) -> tuple[Path, Path]:
    """(folder holding tensorrt_bindings/, folder of the stub libraries) for ``version``; skips when impossible."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("the API tier loads the manylinux x86_64 bindings; this is not Linux x86_64")
    for tool in ("nm", "readelf", "gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"the API tier needs '{tool}' (binutils/gcc) to build the stub libnvinfer")
    spec = BINDINGS[version]
    pyver = f"{sys.version_info.major}{sys.version_info.minor}"
    root = _wheel_cache() / f"{spec.replace('==', '-')}-cp{pyver}"
    wheels = sorted(root.glob("*.whl")) if root.is_dir() else []
    if not wheels:
        root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
               "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64", "-d", str(root), spec]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        wheels = sorted(root.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            pytest.skip(f"cannot download {spec} (offline or no cp{pyver} wheel): {done.stderr.strip()[-200:]}")
    site = root / "site"
    if not (site / "tensorrt_bindings").is_dir():
        with zipfile.ZipFile(wheels[0]) as whl:
            whl.extractall(site)
    return site, _stub_libraries(site / "tensorrt_bindings" / "tensorrt.so", root / "stub")


def _stub_libraries(extension: Path, out: Path) -> Path:
    """A no-op libnvinfer exporting what ``extension`` imports and no process has, under every soname it needs."""
    if out.is_dir() and any(out.iterdir()):
        return out
    listing = subprocess.run(["nm", "-D", "--undefined-only", str(extension)], capture_output=True, text=True,
                             check=True).stdout
    imported = [line.split()[-1] for line in listing.splitlines() if line.split()[-2:-1] == ["U"] and "@" not in line]
    code = "import ctypes, sys; h = ctypes.CDLL(None); print(' '.join(s for s in sys.argv[1:] if not hasattr(h, s)))"
    symbols = subprocess.run([sys.executable, "-c", code, *sorted(set(imported))], capture_output=True, text=True,
                             check=True).stdout.split()  # what a fresh process lacks: libnvinfer's, not libc's
    needed = [line.split("[")[1].rstrip("]") for line in subprocess.run(
        ["readelf", "-d", str(extension)], capture_output=True, text=True, check=True).stdout.splitlines()
        if "(NEEDED)" in line and "libnv" in line]
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    source = tmp / "stub.c"
    source.write_text("/* no-op stand-ins for the TensorRT symbols the bindings import; nothing can run */\n"
                      + "".join(f"void *{name}(void) {{ return 0; }}\n" for name in symbols))
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp / needed[0]), str(source), f"-Wl,-soname,{needed[0]}"],
                   check=True, capture_output=True)
    for name in needed[1:]:
        (tmp / name).symlink_to(needed[0])
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def run_check(version: str, uses: list[dict]) -> dict:
    site, stub = _bindings(version)
    env = {**os.environ, "PYTHONPATH": str(site), "LD_LIBRARY_PATH": str(stub)}
    done = subprocess.run([sys.executable, str(CHECK_SCRIPT)], input=json.dumps(uses), capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, f"TensorRT {version} bindings did not load against the stub: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


# -- the tests ------------------------------------------------------------------------------------
def test_collector_finds_the_uses_of_each_path():
    """The collector sees what the code does (so an empty collection cannot pass the tier)."""
    uses = all_uses()
    names = {(u["path"], ".".join([u["owner"], *u["chain"]])) for u in uses}
    assert ("builder_flags", "IBuilderConfig.int8_calibrator") in names
    assert ("builder_flags", "IBuilderConfig.set_calibration_profile") in names
    assert ("builder_flags", "IBuilderConfig.can_run_on_DLA") in names
    assert ("strongly_typed", "trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED") in names
    assert ("all", "IExecutionContext.execute_async_v3") in names and ("all", "trt.BuilderFlag.TF32") not in names
    assert ("strongly_typed", "trt.BuilderFlag.TF32") in names and ("builder_flags", "trt.BuilderFlag.INT8") in names
    assert ("all", "IBuilderConfig.set_timing_cache") in names
    assert {u["path"] for u in uses} == {"all", "strongly_typed", "builder_flags", "trt8"}


@pytest.mark.parametrize("version", sorted(BINDINGS))
def test_every_tensorrt_use_exists_in_the_bindings_of_its_path(version, record_property):
    uses = [u for u in all_uses() if version in PATH_VERSIONS[u["path"]]]
    result = run_check(version, uses)
    unchecked = sum(1 for u in all_uses() if not PATH_VERSIONS[u["path"]])
    summary = (f"TensorRT {result['version']} bindings ({BINDINGS[version]}): {result['checked']} API uses checked, "
               f"{len(result['missing'])} missing; {unchecked} use(s) of the 8.x-only path not checked")
    print(summary)
    record_property("api_tier", summary)
    assert result["version"].startswith(version) and result["checked"] == len(uses) > 20
    assert not result["missing"], "\n".join(f"{m['where']}: {m['use']}: {m['why']}" for m in result["missing"])

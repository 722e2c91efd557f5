"""Run in a subprocess by test_api_tier.py: import one version of the real TensorRT Python bindings
(against a stub libnvinfer, so nothing can execute) and check a list of API uses against it.

stdin: JSON list of uses {"owner": "trt" | class name, "chain": [names], "call": bool,
"nargs": int, "kwargs": [names], "where": "file:line"}. stdout: JSON {"version", "checked",
"missing": [{"where", "use", "why"}]}.
"""
import json
import re
import sys


def signatures(doc: str, name: str) -> list[list[tuple[str, bool]]]:
    """Parameters (name, has_default) of each pybind11 signature of ``name`` in ``doc``, self dropped."""
    out = []
    for line in (doc or "").splitlines():
        match = re.match(rf"^\s*(?:\d+\.\s*)?{re.escape(name)}\((.*)\)\s*(?:->.*)?$", line)
        if not match or match[1].strip() in ("*args, **kwargs",):
            continue
        params, depth, cur = [], 0, ""
        for ch in match[1]:  # split on top-level commas (types hold brackets)
            if ch in "[(<":
                depth += 1
            elif ch in "])>":
                depth -= 1
            if ch == "," and depth == 0:
                params.append(cur)
                cur = ""
            else:
                cur += ch
        if cur.strip():
            params.append(cur)
        parsed = [(p.split(":")[0].split("=")[0].strip(), "=" in p) for p in params]
        out.append([p for p in parsed if p[0] != "self"])
    return out


def accepts(sig: list[tuple[str, bool]], nargs: int, kwargs: list[str]) -> bool:
    names = [n for n, _ in sig]
    if nargs > len(sig) or any(k not in names[nargs:] for k in kwargs):
        return False
    required = [n for i, (n, default) in enumerate(sig) if not default and i >= nargs]
    return all(n in kwargs for n in required)


def check(trt, use: dict) -> str | None:
    """None when the use exists in these bindings, else why not."""
    obj = trt if use["owner"] == "trt" else getattr(trt, use["owner"], None)
    if obj is None:
        return f"no class tensorrt.{use['owner']}"
    for name in use["chain"]:
        if not hasattr(obj, name):
            return f"{getattr(obj, '__name__', obj)} has no attribute '{name}'"
        obj = getattr(obj, name)
    if use["call"] and use["chain"] and callable(obj) and not isinstance(obj, type):
        name = use["chain"][-1]
        sigs = signatures(getattr(obj, "__doc__", ""), name)
        if sigs and not any(accepts(s, use["nargs"], use["kwargs"]) for s in sigs):
            return f"no signature of {name} takes {use['nargs']} positional argument(s) and {use['kwargs']}: {sigs}"
    return None


def main() -> None:
    import tensorrt_bindings as trt

    uses = json.load(sys.stdin)
    missing = []
    for use in uses:
        why = check(trt, use)
        if why is not None:
            missing.append({"where": use["where"], "use": ".".join([use["owner"], *use["chain"]]), "why": why})
    json.dump({"version": trt.__version__, "checked": len(uses), "missing": missing}, sys.stdout)


if __name__ == "__main__":
    main()

"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""


class SonoedgeError(Exception):
    """A user-facing error: the message names the thing at fault and, where possible, the fix."""

    exit_code = 2


class UnknownNameError(SonoedgeError, KeyError):
    """A name looked up in a registry (generator, backend, source, device, ...) does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputError(SonoedgeError):
    """A file, folder or frame that cannot be used: missing, unreadable, truncated, wrong shape."""


class BundleError(SonoedgeError):
    """A bundle that does not match its manifest, or a manifest that is malformed."""


class GateError(SonoedgeError):
    """An exported precision failed its accuracy gate, or a gate metric could not be computed."""

    exit_code = 3


class MissingDependencyError(SonoedgeError):
    """An optional package (an extra) is needed for this command and is not installed."""


def require(module: str, extra: str):
    """Import an optional heavy module or fail with the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"this needs the Python package '{module.split('.')[0]}' ({exc}); "
            f"install it with: pip install 'sonoedge[{extra}]'"
        ) from exc

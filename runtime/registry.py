"""One registry per family (generators, losses, backends, sources, sinks, ...), STYLE.md rule 2.

    GENERATORS = Registry("generator")

    @GENERATORS.register("resnet")
    class ResnetGenerator(nn.Module): ...

    GENERATORS.create("resnet", cfg)      # unknown names fail with the list of valid ones
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, TypeVar

from sonoedge.runtime.errors import UnknownNameError

T = TypeVar("T")


class Registry:
    def __init__(self, family: str):
        self.family = family
        self._entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.family} '{name}' is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none registered)"
            raise UnknownNameError(f"unknown {self.family} '{name}'; valid names: {valid}") from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

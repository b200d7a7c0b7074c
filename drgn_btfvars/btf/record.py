"""A frozen record class without code generation.

``dataclasses`` builds ``__init__``/``__eq__``/``__repr__`` by compiling
source text, about 1 ms per method; the engine's seven record classes cost
~25 ms at import that way, half of the plugin's import time. :class:`Record`
gives the same behaviour (positional or keyword fields, defaults, frozen,
equality, hashing, repr) from one generic implementation.
"""

from typing import Any, ClassVar, Dict, Tuple

__all__ = ["Record"]


class Record:
    """Subclasses list ``_fields`` in order; ``_defaults`` maps the trailing
    fields that may be omitted to their values. Instances keep their fields
    in ``__dict__`` (the reader fills hot records through it directly)."""

    _fields: ClassVar[Tuple[str, ...]] = ()
    _defaults: ClassVar[Dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} fields, "
                            f"{len(args)} given")
        values = dict(zip(fields, args))
        for k, v in kwargs.items():
            if k not in fields:
                raise TypeError(f"{type(self).__name__}() has no field {k!r}")
            if k in values:
                raise TypeError(f"{type(self).__name__}() got field {k!r} twice")
            values[k] = v
        for f in fields:
            if f not in values:
                if f not in self._defaults:
                    raise TypeError(f"{type(self).__name__}() missing field {f!r}")
                values[f] = self._defaults[f]
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def _values(self) -> Tuple[Any, ...]:
        d = self.__dict__
        return tuple(d[f] for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        d = self.__dict__
        inner = ", ".join(f"{f}={d[f]!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

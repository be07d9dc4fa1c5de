"""A frozen dataclass with some fields changed, for the decision's hot path.

``dataclasses.replace`` is general: it walks every field, reads each one back through ``getattr``
and calls ``__init__``, which sets every field again through ``object.__setattr__`` (the frozen
class's way). A leg of 13 fields costs about 7 µs that way and 1 µs here, and one bracket's decision
makes six such copies (its three legs' transmit flags, the what-if order, the proposal judged and
then given its margin), each run cold, seconds after the last alert. ``ProtectionSpec`` validates
itself in ``__post_init__``: it keeps ``replace``.

:func:`evolve` copies the instance's ``__dict__`` and overwrites the named fields. That is exactly
``replace`` for the classes it accepts: dataclasses whose ``__init__`` only stores its arguments
(no ``__post_init__``, no ``init=False`` field) and that keep their fields in a
``__dict__`` (no ``slots``). Any other class, or a name that is not a field, raises ``TypeError``
at the first call, as ``replace`` would for a name it does not know.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

# class -> the names evolve may change (checked once per class)
_checked: dict[type, frozenset[str]] = {}


def evolve(obj: T, /, **changes: Any) -> T:
    """``obj`` with ``changes`` (field name -> new value); ``obj`` itself is left as it was."""
    cls = type(obj)
    names = _checked.get(cls) or _check(cls)
    if not names.issuperset(changes):
        unknown = ", ".join(sorted(set(changes) - names))
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
    copied = object.__new__(cls)
    state = copied.__dict__
    state.update(obj.__dict__)
    state.update(changes)
    return copied


def _check(cls: type) -> frozenset[str]:
    """The fields of ``cls``, once it is known that copying its ``__dict__`` is its ``__init__``."""
    if not dataclasses.is_dataclass(cls) or "__slots__" in cls.__dict__:
        raise TypeError(f"evolve takes a dataclass without slots, not {cls.__name__}")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__: use dataclasses.replace")
    fields = dataclasses.fields(cls)  # an InitVar only reaches __post_init__, refused above
    if any(not f.init for f in fields):
        raise TypeError(f"{cls.__name__} has fields __init__ does not set: use dataclasses.replace")
    names = frozenset(f.name for f in fields)
    _checked[cls] = names
    return names

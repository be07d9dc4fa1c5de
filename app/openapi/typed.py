"""JSON Schema (OpenAPI 3.1) from the TypedDicts the app answers with, so the description of an
answer is generated from the same class the code fills in, never written twice.

Handled: ``str``, ``int``, ``float``, ``bool``, ``None``, unions (``X | None``), ``list[X]``,
``dict[str, X]``, ``Any``, ``Literal[...]``, ``NotRequired[X]`` and nested TypedDicts, which become
components (``#/components/schemas/<class name>``). A TypedDict's own keys are all its keys: an
answer with a key the class does not declare does not match the description
(``additionalProperties: false``), so a key added in the code and not in its class is caught by
the fuzz test's response checks.
"""

from __future__ import annotations

import types
from typing import (
    Any,
    Literal,
    NotRequired,
    Required,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

JsonSchema = dict[str, Any]
_SCALARS: dict[Any, JsonSchema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}


class TypedSchemas:
    """Collects the components of the TypedDicts met, by class name."""

    def __init__(self) -> None:
        self.components: dict[str, JsonSchema] = {}
        self._classes: dict[str, type] = {}

    def ref(self, doc: type) -> JsonSchema:
        """A ``$ref`` to ``doc``'s component, built (with those it refers to) on first use."""
        name = doc.__name__
        known = self._classes.get(name)
        if known is not None and known is not doc:
            raise ValueError(f"two TypedDicts named {name}: {known.__module__} and {doc.__module__}")
        if known is None:
            self._classes[name] = doc
            self.components[name] = {}  # reserved first: a class may refer to itself
            self.components[name] = self._object(doc)
        return {"$ref": f"#/components/schemas/{name}"}

    def _object(self, doc: type) -> JsonSchema:
        hints = get_type_hints(doc, include_extras=True)
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        for key, hint in hints.items():
            # under ``from __future__ import annotations`` Python 3.11 files every key as required
            # (__required_keys__), so the wrapper read here is the truth
            origin = get_origin(hint)
            if origin is NotRequired or origin is Required:
                hint = get_args(hint)[0]
            if origin is Required or (doc.__total__ and origin is not NotRequired):
                required.append(key)
            properties[key] = self.schema(hint)
        out: JsonSchema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            out["required"] = required
        if doc.__doc__:
            out["description"] = " ".join(doc.__doc__.split())
        return out

    def schema(self, hint: Any) -> JsonSchema:
        """The JSON Schema of one annotation."""
        if hint is Any:
            return {}
        if hint in _SCALARS:
            return dict(_SCALARS[hint])
        if is_typeddict(hint):
            return self.ref(hint)
        origin, args = get_origin(hint), get_args(hint)
        if origin in (Union, types.UnionType):
            options = [self.schema(a) for a in args]
            if all(set(o) == {"type"} and isinstance(o["type"], str) for o in options):
                return {"type": [o["type"] for o in options]}
            return {"anyOf": options}
        if origin is list:
            return {"type": "array", "items": self.schema(args[0])}
        if origin is dict:
            if args and args[0] is not str:
                raise TypeError(f"JSON object keys are strings, not {args[0]}")
            return {"type": "object", "additionalProperties": self.schema(args[1]) if args else {}}
        if origin is Literal:
            return {"enum": list(args)}
        if hint is dict:
            return {"type": "object"}
        if hint is list:
            return {"type": "array"}
        raise TypeError(f"no JSON Schema for {hint!r}")

"""PrestoDB's column type strings as Trino's type names and ``typeSignature``: pure.

Presto writes ``timestamp`` (always milliseconds) where Trino writes ``timestamp(3)``,
and its ``typeSignature`` has another shape (``typeArguments``/``literalArguments``, row
fields whose types are plain strings). Trino clients map values by the signature (the
Python client's row mapper reads ``rawType`` and ``arguments``), so the gateway gives
every Presto column the type string and signature Trino would have written, read from
Presto's type string alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

#: Presto's date-time types, always of millisecond precision, under Trino's names.
_MILLIS_TYPES = {
    "timestamp": ("timestamp", "timestamp(3)"),
    "timestamp with time zone": ("timestamp with time zone", "timestamp(3) with time zone"),
    "time": ("time", "time(3)"),
    "time with time zone": ("time with time zone", "time(3) with time zone"),
}

#: Trino's length of an unbounded ``varchar``, which its signature carries.
UNBOUNDED_VARCHAR = 2147483647

_TOKEN_RE = re.compile(r'\s*(?:(\d+)|("(?:[^"]|"")*")|([A-Za-z_][\w.:]*)|([(),]))')


class _TypeSyntax(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise _TypeSyntax(text)
        number, quoted, word, punct = match.groups()
        if number:
            tokens.append(("number", number))
        elif quoted:
            tokens.append(("quoted", quoted[1:-1].replace('""', '"')))
        elif word:
            tokens.append(("word", word))
        else:
            tokens.append(("punct", punct))
        pos = match.end()
    return tokens


class _Parser:
    """Presto's type strings (``array(row(a integer, "b c" timestamp))``) as Trino's
    type string and signature."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise _TypeSyntax("unexpected end")
        self.pos += 1
        return token

    def whole(self) -> tuple[str, dict[str, Any]]:
        result = self.type()
        if self.peek()[0] != "end":
            raise _TypeSyntax("trailing text")
        return result

    def type(self) -> tuple[str, dict[str, Any]]:
        kind, word = self.take()
        if kind != "word":
            raise _TypeSyntax(word)
        base = word
        for name in _MULTIWORD_TYPES:  # "timestamp with time zone", "double precision"
            words = name.split(" ")
            ahead = [self.peek(i) for i in range(len(words) - 1)]
            if word.lower() == words[0] and [t[1].lower() for t in ahead] == words[1:]:
                self.pos += len(words) - 1
                base = name
                break
        params: list[tuple[str, Any]] = []
        if self.peek() == ("punct", "("):
            self.take()
            while True:
                params.append(self.parameter(base.lower()))
                _, punct = self.take()
                if punct == ")":
                    break
                if punct != ",":
                    raise _TypeSyntax(punct)
        return _trino_type(base, params)

    def parameter(self, base: str) -> tuple[str, Any]:
        kind, value = self.peek()
        if kind == "number":
            self.take()
            return "LONG", int(value)
        if base != "row":
            return "TYPE", self.type()
        if kind == "quoted":
            self.take()
            return "NAMED_TYPE", (value, *self.type())
        # A row field is "name type" or just "type": an anonymous field's type ends
        # right before "," or ")".
        start = self.pos
        try:
            anonymous = self.type()
        except _TypeSyntax:
            anonymous = None
        if anonymous is not None and self.peek() in (("punct", ","), ("punct", ")")):
            return "NAMED_TYPE", (None, *anonymous)
        self.pos = start
        name = self.take()[1]
        return "NAMED_TYPE", (name, *self.type())


#: Presto's multi-word type names, longest first.
_MULTIWORD_TYPES = (
    "timestamp with time zone",
    "time with time zone",
    "interval day to second",
    "interval year to month",
    "double precision",
)


def _quote_field(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _trino_type(base: str, params: list[tuple[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Trino's type string and ``typeSignature`` of Presto type *base*(*params*)."""
    if base in _MILLIS_TYPES and not params:
        raw, name = _MILLIS_TYPES[base]
        return name, {"rawType": raw, "arguments": [{"kind": "LONG", "value": 3}]}
    if base == "varchar" and not params:
        return base, {
            "rawType": base,
            "arguments": [{"kind": "LONG", "value": UNBOUNDED_VARCHAR}],
        }
    parts: list[str] = []
    arguments: list[dict[str, Any]] = []
    for kind, value in params:
        if kind == "LONG":
            parts.append(str(value))
            arguments.append({"kind": "LONG", "value": value})
        elif kind == "TYPE":
            parts.append(value[0])
            arguments.append({"kind": "TYPE", "value": value[1]})
        else:
            name, type_string, signature = value
            field: dict[str, Any] = {"typeSignature": signature}
            if name is not None:
                field = {"fieldName": {"name": name}, "typeSignature": signature}
                type_string = f"{_quote_field(name)} {type_string}"
            parts.append(type_string)
            arguments.append({"kind": "NAMED_TYPE", "value": field})
    separator = ", " if base in ("row", "map") else ","
    text = f"{base}({separator.join(parts)})" if parts else base
    return text, {"rawType": base, "arguments": arguments}


def trino_type(presto_type: str) -> tuple[str, dict[str, Any]]:
    """Trino's type string and ``typeSignature`` for a Presto column type string.

    A type Presto writes in a way this does not read (an enum's values, a future
    syntax) keeps its string, with a signature naming it raw: clients show its values
    as they came.
    """
    try:
        return _Parser(presto_type).whole()
    except (_TypeSyntax, IndexError):
        return presto_type, {"rawType": presto_type, "arguments": []}


# ------------------------------------------------------------------------- values

Fixer = Callable[[Any], Any]


def _time_with_zone(value: Any) -> Any:
    # Presto: "01:02:03.456 +05:30"; Trino: "01:02:03.456+05:30".
    return value.replace(" ", "", 1) if isinstance(value, str) else value


def _structural(value: Any) -> Any:
    # Presto writes an array, map or row value (at every level) as a JSON text.
    return json.loads(value) if isinstance(value, str) else value


def _array(inner: Fixer | None) -> Fixer:
    def fix(value: Any) -> Any:
        value = _structural(value)
        if inner is None or not isinstance(value, list):
            return value
        return [None if v is None else inner(v) for v in value]

    return fix


def _map(inner: Fixer | None) -> Fixer:
    def fix(value: Any) -> Any:
        value = _structural(value)
        if inner is None or not isinstance(value, dict):
            return value
        return {k: None if v is None else inner(v) for k, v in value.items()}

    return fix


def _row(fields: list[Fixer | None]) -> Fixer:
    def fix(value: Any) -> Any:
        value = _structural(value)
        if not isinstance(value, list) or len(value) != len(fields):
            return value
        return [v if f is None or v is None else f(v) for f, v in zip(fields, value, strict=True)]

    return fix


def value_fixer(signature: dict[str, Any]) -> Fixer | None:
    """What turns a Presto value of the type of (Trino) *signature* into the value Trino
    would have sent; None when they are the same.

    Presto writes ``time with time zone`` with a space before the offset, and array, map
    and row values as JSON texts (``"[ 1, null, 3 ]"``, nested ones again as texts),
    where Trino writes JSON arrays and objects.
    """
    raw, arguments = signature.get("rawType"), signature.get("arguments") or []
    values = [a.get("value") for a in arguments if isinstance(a, dict)]
    if raw == "time with time zone":
        return _time_with_zone
    if raw == "array" and len(values) == 1 and isinstance(values[0], dict):
        return _array(value_fixer(values[0]))
    if raw == "map" and len(values) == 2 and isinstance(values[1], dict):
        return _map(value_fixer(values[1]))
    if raw == "row" and all(isinstance(v, dict) for v in values):
        return _row([value_fixer(v.get("typeSignature") or {}) for v in values])
    return None

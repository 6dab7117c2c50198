"""A JSON array of rows (``[[1,"a",null],[2,"b\\n",true]]``, as Trino's protocol sends
results) split into columns with numpy and pyarrow, without a Python object per value.

:func:`split_rows` finds where every value starts and ends in one vectorised pass over the
bytes: the positions of the few characters that matter (``"`` ``\\`` ``,`` ``[`` ``]``
``{`` ``}``), which of them are inside strings (the parity of the unescaped quotes before
them), and the nesting depth of the rest; a ``,`` or ``]`` at row depth ends a value.
Each :class:`JsonColumn` then hands its values to Arrow as one string array laid over the
original bytes (each value followed by the gap to the next, the gaps null), which Arrow
parses (numbers, dates) or copies (strings) in C. Only values that need Python anyway are
parsed as Python objects: strings with escapes (a few), and nested arrays, maps and rows.

Values that do not fit (a number where the type wants a string, a malformed segment) are
never guessed at: :func:`split_rows` answers ``None`` and :class:`JsonColumn` raises
`NotText`, and the caller parses with ``orjson`` instead, which reads (or refuses) them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CHUNK_BYTES",
    "JsonColumn",
    "JsonRows",
    "NotText",
    "rows_in_chunks",
    "split_array",
    "split_rows",
]

_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")
_OPEN, _CLOSE, _OPEN_OBJECT, _CLOSE_OBJECT = ord("["), ord("]"), ord("{"), ord("}")
_NULL, _TRUE, _SPACE = ord("n"), ord("t"), ord(" ")

#: 1 for the characters that decide the structure, 0 for all others: a `bytes.translate`
#: table (three times faster than looking each byte up with numpy).
_SPECIAL = bytes(1 if c in b'"\\,[]{}' else 0 for c in range(256))
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\r\n")] = True


class NotText(ValueError):
    """A column's values are not what the conversion asked for (e.g. not all strings)."""


class JsonRows:
    """Where each value of a JSON array of rows lies: ``starts`` and ``ends`` (byte
    offsets, shape ``(rows, width)``, quotes included) into ``plain``, and ``firsts``,
    each value's first byte (``"``, ``n`` for null, a digit …)."""

    def __init__(
        self,
        plain: bytes,
        starts: np.ndarray,
        ends: np.ndarray,
        backslashes: np.ndarray,
        span: tuple[int, int] | None = None,
        firsts: np.ndarray | None = None,
    ) -> None:
        self.plain = plain
        self.bytes = np.frombuffer(plain, dtype=np.uint8)
        self.starts = starts
        self.ends = ends
        self.firsts = self.bytes[starts] if firsts is None else firsts
        #: Positions of every backslash (in strings: escapes), sorted; usually none.
        self.backslashes = backslashes
        #: Where the array lies in *plain* (all of it, for a segment).
        self.span = span or (0, len(plain))

    def __len__(self) -> int:
        return self.starts.shape[0]

    @property
    def width(self) -> int:
        """Values per row."""
        return self.starts.shape[1]

    def python(self) -> list[list[Any]]:
        """The rows as Python lists (``orjson``), for rows no column list fits."""
        low, high = self.span
        return orjson.loads(memoryview(self.plain)[low:high])

    def column(self, index: int) -> JsonColumn:
        """The values of one column (0-based)."""
        return JsonColumn(self, self.starts[:, index], self.ends[:, index], self.firsts[:, index])


#: Bytes tokenised at a time: the positions of a block's characters take some eight times
#: its size, so a 16 MB segment is never tokenised at once.
BLOCK_BYTES = 1 << 20


def split_rows(plain: bytes, width: int, block: int | None = None) -> JsonRows | None:
    """The value positions of *plain*, a JSON array of rows of *width* values each;
    ``None`` when it is not shaped like that (the caller then parses it with orjson)."""
    found = split_array(plain, 0, width, block)
    if found is None or plain[found[1] :].strip(_SPACES):
        return None  # not one array (or something after it)
    return found[0]


def split_array(
    plain: bytes, start: int = 0, width: int | None = None, block: int | None = None
) -> tuple[JsonRows, int] | None:
    """The value positions of the JSON array of rows that begins at *start* of *plain*
    (after whitespace; *plain* may go on after it, as a page goes on after its ``data``),
    and the offset just past the array's closing bracket; ``None`` when the array is not
    rows of *width* values each (of the first row's width when *width* is None).

    The bytes are read *block* bytes (`BLOCK_BYTES`) at a time, carrying over whether
    the block starts inside a string and at which depth, up to the end of the array.
    """
    block = block or BLOCK_BYTES
    buf = np.frombuffer(plain, dtype=np.uint8)
    first = start + len(plain[start : start + 64]) - len(plain[start : start + 64].lstrip(_SPACES))
    if first >= len(buf) or buf[first] != _OPEN:
        return None
    index = np.int64 if len(buf) >= 2**31 else np.int32
    backslashes = np.flatnonzero(buf[first:] == _BACKSLASH) + first if b"\\" in plain else _NONE
    # A quote after an odd run of backslashes is part of the string.
    escaped = _escaped_positions(backslashes) if len(backslashes) else _NONE
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    row_starts: list[np.ndarray] = []
    outer_commas = 0
    in_string = False
    depth = 0
    end = None
    for low in range(first, len(buf), block):
        part = buf[low : low + block]
        pos = np.flatnonzero(np.frombuffer(plain[low : low + block].translate(_SPECIAL), bool))
        char = part[pos]
        is_quote = char == _QUOTE
        if len(escaped):
            local = escaped[(escaped >= low) & (escaped < low + len(part))] - low
            at = np.searchsorted(pos, local)
            hit = at < len(pos)
            at, local = at[hit], local[hit]
            is_quote[at[pos[at] == local]] = False
        inside = np.bitwise_xor.accumulate(is_quote.view(np.uint8)).view(bool)
        if in_string:
            inside = ~inside
        if len(inside):
            in_string = bool(inside[-1])
        # A closing quote is not inside by the count: leave quotes out explicitly.
        outside = ~(inside | is_quote | (char == _BACKSLASH))
        pos, char = (pos[outside] + low).astype(index), char[outside]
        delta = ((char == _OPEN) | (char == _OPEN_OBJECT)).view(np.int8) - (
            (char == _CLOSE) | (char == _CLOSE_OBJECT)
        ).view(np.int8)
        after = np.cumsum(delta, dtype=np.int32) + depth
        if not len(after):
            continue
        closed = np.flatnonzero(after <= 0)
        if len(closed):  # the array ends here: what follows is not ours
            cut = int(closed[0]) + 1
            pos, char, delta, after = pos[:cut], char[:cut], delta[:cut], after[:cut]
            end = int(pos[-1]) + 1
        before = after - delta
        if after.min() < 0:
            return None
        depth = int(after[-1])
        outer = before == 1
        if np.any((char != _OPEN) & (char != _CLOSE) & (char != _COMMA) & outer):
            return None  # an object among the rows
        outer_commas += int(np.count_nonzero((char == _COMMA) & outer))
        in_row = before == 2
        separator = (char == _COMMA) & in_row
        row_open = (char == _OPEN) & outer
        row_starts.append(pos[row_open] + 1)
        starts.append(pos[row_open | separator] + 1)
        ends.append(pos[separator | ((char == _CLOSE) & in_row)])
        if end is not None:
            break
    if end is None:
        return None  # never closed
    row_start = np.concatenate(row_starts)
    rows = len(row_start)
    if outer_commas != max(rows - 1, 0):
        return None  # a scalar among the rows
    if rows == 0:
        empty = np.empty((0, width or 0), dtype=index)
        return JsonRows(plain, empty, empty, backslashes, (first, end)), end
    value_starts, value_ends = np.concatenate(starts), np.concatenate(ends)
    if len(value_starts) != len(value_ends):
        return None
    # Each row's values: from its first value to the next row's.
    sizes = np.diff(np.searchsorted(value_starts, row_start), append=len(value_starts))
    width = int(sizes[0]) if width is None else width
    if width < 1 or np.any(sizes != width):
        return None  # a row of another width (or an empty row)
    value_starts, value_ends, firsts = _strip(buf, value_starts, value_ends)
    if np.any(value_starts >= value_ends):
        return None  # an empty value: [1,,2]
    shape = (rows, width)
    found = JsonRows(
        plain,
        value_starts.reshape(shape),
        value_ends.reshape(shape),
        backslashes,
        (first, end),
        firsts.reshape(shape),
    )
    return found, end


_SPACES = b" \t\r\n"
_NONE = np.empty(0, dtype=np.int64)


def _escaped_positions(backslashes: np.ndarray) -> np.ndarray:
    """The positions of characters escaped by a backslash (the one after an odd run)."""
    breaks = np.flatnonzero(np.diff(backslashes) != 1)
    first = np.concatenate(([0], breaks + 1))
    last = np.concatenate((breaks, [len(backslashes) - 1]))
    odd = (last - first) % 2 == 0
    return backslashes[last[odd]] + 1


def _strip(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...]:
    """Values without the whitespace around them (Trino sends none; hand-made JSON may),
    and their first bytes. A byte up to the space is whitespace at a value's edge: no
    other is valid JSON outside strings."""
    while True:
        firsts = buf[starts]
        if not np.any(firsts <= _SPACE):
            break
        lead = _WHITESPACE[firsts] & (starts < ends)
        if not lead.any():
            break
        starts = starts + lead
    while True:
        lasts = buf[ends - 1]
        if not np.any(lasts <= _SPACE):
            break
        trail = _WHITESPACE[lasts] & (starts < ends)
        if not trail.any():
            break
        ends = ends - trail
    return starts, ends, firsts


class JsonColumn:
    """One column's values in a :class:`JsonRows`, converted in bulk on request."""

    def __init__(
        self, rows: JsonRows, starts: np.ndarray, ends: np.ndarray, firsts: np.ndarray
    ) -> None:
        self._rows = rows
        self._starts = starts
        self._ends = ends
        self._firsts = firsts
        self.null = firsts == _NULL
        self.quoted = firsts == _QUOTE

    def __len__(self) -> int:
        return len(self._starts)

    def strings(self) -> pa.Array:
        """The values as an Arrow string array, escapes decoded; raises `NotText` unless
        every value is a JSON string or null."""
        if not np.all(self.quoted | self.null):
            raise NotText("not every value is a string")
        starts, ends = self._starts + 1, self._ends - 1
        arr = self._text(starts, ends).take(_even(len(self)))
        escaped = self._escaped()
        if escaped is not None:
            plain = self._rows.plain
            spans = zip(self._starts[escaped].tolist(), self._ends[escaped].tolist(), strict=True)
            decoded = [orjson.loads(plain[s:e]) for s, e in spans]
            mask = np.zeros(len(self), dtype=bool)
            mask[escaped] = True
            arr = pc.replace_with_mask(arr, pa.array(mask), pa.array(decoded, pa.string()))
        return arr

    def parse(self, arrow_type: pa.DataType) -> pa.Array:
        """The values parsed by Arrow as *arrow_type* (numbers, dates; quoted values such
        as ``"NaN"`` or ``"2024-01-31"`` without their quotes); raises `NotText` for a
        value Arrow does not read as that type."""
        quoted = self.quoted
        starts, ends = self._starts + quoted, self._ends - quoted
        if quoted.any() and self._escaped() is not None:
            raise NotText("a quoted value has escapes")
        try:
            parsed = self._text(starts, ends).cast(arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise NotText(str(e)) from None
        width = arrow_type.bit_width // 8 if pa.types.is_primitive(arrow_type) else 0
        if width < 1 or parsed.offset:
            return parsed.take(_even(len(self)))
        # Every other value of the parsed array (the gaps are null): a strided copy.
        values = np.frombuffer(parsed.buffers()[1], dtype=f"u{width}")[0 : 2 * len(self) : 2]
        nulls = self.null
        bitmap = pa.py_buffer(np.packbits(~nulls, bitorder="little")) if nulls.any() else None
        data = pa.py_buffer(np.ascontiguousarray(values))
        return pa.Array.from_buffers(arrow_type, len(self), [bitmap, data])

    def booleans(self) -> pa.Array:
        """``true``/``false``/``null`` as an Arrow boolean array (`NotText` for others)."""
        first = self._firsts
        if not np.all(self.null | (first == _TRUE) | (first == ord("f"))) or self.quoted.any():
            raise NotText("not every value is a boolean")
        return pa.array(first == _TRUE, mask=self.null, type=pa.bool_())

    def python(self) -> list[Any]:
        """The values as Python objects (``orjson``): for types that become objects."""
        plain = self._rows.plain
        spans = zip(self._starts.tolist(), self._ends.tolist(), strict=True)
        return orjson.loads(b"[" + b",".join(plain[s:e] for s, e in spans) + b"]")

    def _escaped(self) -> np.ndarray | None:
        """Indices of the values with a backslash in them, or None."""
        backslashes = self._rows.backslashes
        if not len(backslashes):
            return None
        count = np.searchsorted(backslashes, self._ends) - np.searchsorted(
            backslashes, self._starts
        )
        found = np.flatnonzero(count)
        return found if len(found) else None

    def _text(self, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
        """A string array over the segment's bytes: value, gap, value, gap, ... with the
        gaps and the JSON nulls null, so no byte is copied to build it."""
        n = len(starts)
        plain = self._rows.plain
        large = len(plain) >= 2**31
        offsets = np.empty(2 * n, dtype=np.int64 if large else np.int32)
        offsets[0::2] = starts
        offsets[1::2] = ends
        valid = np.zeros(2 * n, dtype=bool)
        valid[0::2] = ~self.null
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        kind = pa.large_string() if large else pa.string()
        if n == 0:
            return pa.array([], type=kind)
        # Offsets start at the first value: the array covers only bytes from there on.
        return pa.Array.from_buffers(
            kind, 2 * n - 1, [bitmap, pa.py_buffer(offsets), pa.py_buffer(plain)]
        )


def _even(n: int) -> pa.Array:
    return pa.array(np.arange(0, 2 * n, 2, dtype=np.int64))


#: Rows are parsed this many bytes of JSON at a time: a segment of a hundred thousand
#: rows is some 15 MB of JSON but twenty times that as Python objects.
CHUNK_BYTES = 2 * 1024 * 1024


def rows_in_chunks(plain: bytes, chunk: int = CHUNK_BYTES) -> Iterator[list[list[Any]]]:
    """The rows of a JSON array of rows (``[[...],[...]]``), parsed about *chunk* bytes at
    a time, so only one chunk's rows are Python objects at once.

    A chunk ends before a ``],[`` that parses as a row boundary: one inside a string
    or a nested array leaves the chunk's JSON unbalanced (an unterminated string, an
    open bracket), which the parser refuses, and the next ``],[`` is tried.
    """
    start = 1  # just inside the outer bracket
    while len(plain) - start > chunk:
        cut = plain.find(b"],[", start + chunk)
        while cut >= 0:
            try:
                rows = orjson.loads(b"[" + plain[start : cut + 1] + b"]")
            except orjson.JSONDecodeError:
                cut = plain.find(b"],[", cut + 1)
                continue
            yield rows
            start = cut + 2
            break
        else:
            break
    yield orjson.loads(b"[" + plain[start:]) if start > 1 else orjson.loads(plain)

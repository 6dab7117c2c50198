"""Notebook content: validation, the stored form, the SQL in it, diffs, safe file names.

Pure functions, no I/O. A published notebook is stored as nbformat v4 JSON text, after
validation and after dropping every trust mark (see `canonical_notebook`).
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import nbformat

from .errors import SharingError

NOTEBOOK_SUFFIX = ".ipynb"


def format_size(size: int) -> str:
    """``1536`` → ``"1.5 KB"``: sizes as people read them (powers of 1024)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _too_large(size: int, limit: int) -> SharingError:
    return SharingError(
        f"The notebook is {format_size(size)}, over the {format_size(limit)} limit for "
        "shared notebooks; clear large outputs (Edit > Clear Outputs) and publish again.",
        status=413,
    )


def check_size(size: int, limit: int) -> None:
    """SharingError (413) when ``size`` bytes exceed ``limit``."""
    if limit and size > limit:
        raise _too_large(size, limit)


def canonical_notebook(content: Any, max_size: int) -> str:
    """The stored form of a notebook: validated nbformat v4 JSON text, untrusted.

    ``content`` is the notebook as parsed JSON (a dict) or as text. Raises SharingError
    when it is not a valid notebook or is larger than ``max_size`` bytes.

    Trust marks are dropped (``metadata.trusted`` of cells, ``metadata.signature``):
    a notebook saved into someone's workspace with every cell marked trusted would be
    signed as trusted there, and JupyterLab would then run its HTML and JavaScript
    outputs in the copier's session.
    """
    if isinstance(content, bytes | str):
        check_size(len(content), max_size)
        try:
            content = json.loads(content)
        except ValueError as e:
            raise SharingError(f"The notebook is not JSON ({e}); is it an .ipynb file?") from None
    if not isinstance(content, dict):
        raise SharingError("The notebook must be a JSON object (the content of an .ipynb file).")
    try:
        node = nbformat.reads(json.dumps(content), as_version=4)
        nbformat.validate(node)
    except Exception as e:  # nbformat raises several types; all mean "not a notebook"
        raise SharingError(
            f"This is not a valid Jupyter notebook ({_first_line(e)}); open it in "
            "JupyterLab, save it and publish again."
        ) from None
    strip_trust(node)
    text = nbformat.writes(node, version=4)
    check_size(len(text.encode()), max_size)
    return text


def _first_line(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return line[:200]


def strip_trust(notebook: dict[str, Any]) -> dict[str, Any]:
    """Remove every trust mark from ``notebook`` (in place) and return it."""
    notebook.get("metadata", {}).pop("signature", None)
    for cell in notebook.get("cells", []):
        cell.get("metadata", {}).pop("trusted", None)
    return notebook


def cell_source(cell: dict[str, Any]) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


@dataclass(frozen=True)
class SqlBlock:
    """The SQL of one code cell: its magic line (``%%sql -o x``) and the query."""

    cell: int
    magic: str
    sql: str


def sql_blocks(notebook: dict[str, Any]) -> list[SqlBlock]:
    """The SQL in a notebook's code cells, in order: ``%%sql`` cell bodies and
    ``%sql`` line magics."""
    blocks: list[SqlBlock] = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        lines = cell_source(cell).splitlines()
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines:
            continue
        first = lines[0].strip()
        if first == "%%sql" or first.startswith("%%sql "):
            body = "\n".join(lines[1:]).strip("\n").rstrip()
            blocks.append(SqlBlock(index, first, body))
            continue
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("%sql ") and len(stripped) > 5:
                blocks.append(SqlBlock(index, "%sql", stripped[5:].strip()))
    return blocks


def is_sql_cell(cell: dict[str, Any]) -> bool:
    """Whether a code cell is a ``%%sql`` cell."""
    first = cell_source(cell).lstrip().split("\n", 1)[0].strip()
    return cell.get("cell_type") == "code" and (first == "%%sql" or first.startswith("%%sql "))


def sql_text(notebook: dict[str, Any]) -> str:
    """All the SQL of a notebook as one text, for search and diffs: each query after
    a comment line with its magic (``-- %%sql -o shipped``), blank lines between."""
    return "\n\n".join(f"-- {block.magic}\n{block.sql}" for block in sql_blocks(notebook))


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff: ``kind`` is hunk, add, remove or same."""

    kind: str
    text: str


def sql_diff(old: str, new: str, context: int = 3) -> list[DiffLine]:
    """The changes from SQL text ``old`` to ``new`` as unified-diff lines."""
    lines: list[DiffLine] = []
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=context)
    for line in diff:
        if line.startswith(("---", "+++")) and not lines:
            continue  # the file headers
        if line.startswith("@@"):
            lines.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            lines.append(DiffLine("add", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("remove", line[1:]))
        else:
            lines.append(DiffLine("same", line[1:]))
    return lines


def unified_diff_text(lines: list[DiffLine]) -> str:
    """Diff lines back as unified-diff text (``+``/``-``/space prefixes)."""
    prefix = {"add": "+", "remove": "-", "same": " ", "hunk": ""}
    return "\n".join(prefix[line.kind] + line.text for line in lines)


_UNSAFE_FILE_CHARS = re.compile(r"[^\w\s\-()\[\],.'&+!@#=]")


def safe_file_name(title: str, suffix: str = NOTEBOOK_SUFFIX, max_length: int = 100) -> str:
    """A file name made from a title that cannot leave its directory or hide itself:
    no separators, no leading dots, no control characters. ``"../../.bashrc"`` →
    ``"bashrc.ipynb"``."""
    name = unicodedata.normalize("NFC", title)
    name = _UNSAFE_FILE_CHARS.sub("-", name)
    name = re.sub(r"\s+", " ", name)
    name = re.sub(r"-{2,}", "-", name)
    name = name.strip(" .-")[:max_length].strip(" .-")
    if name.lower().endswith(suffix):
        name = name[: -len(suffix)].strip(" .-")
    return (name or "notebook") + suffix


def numbered_file_name(name: str, n: int) -> str:
    """``"Sales.ipynb", 2`` → ``"Sales (2).ipynb"``, for a name already taken."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem} ({n}).{ext}" if dot else f"{name} ({n})"


def check_workspace_path(path: Any, *, notebook: bool = True) -> str:
    """A path inside a user's workspace, as JupyterLab shows it (``reports/sales.ipynb``).

    Refuses what could reach outside the workspace or surprise: absolute paths, ``..``,
    hidden components, backslashes, control characters, and (with ``notebook``) names
    that are not ``.ipynb`` files. Returns the normalised path.
    """
    if not isinstance(path, str) or not path.strip():
        raise SharingError("Give the notebook's path in your workspace, e.g. reports/sales.ipynb.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path) or "\\" in path:
        raise SharingError(
            f"The path {path!r} has control characters or backslashes; use / between folders."
        )
    if path.startswith("/") or path.startswith("~"):
        raise SharingError(
            f"The path {path!r} must be relative to your workspace (no leading / or ~)."
        )
    parts = path.strip().split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise SharingError(f"The path {path!r} may not contain empty, '.' or '..' parts.")
    if any(part.startswith(".") for part in parts):
        raise SharingError(f"The path {path!r} points into a hidden folder or file.")
    if len(path) > 1024:
        raise SharingError("The path is longer than 1024 characters.")
    normalised = posixpath.normpath(path.strip())
    if notebook and not normalised.endswith(NOTEBOOK_SUFFIX):
        raise SharingError(f"{normalised!r} is not a notebook; publish an .ipynb file.")
    return normalised

"""The SQL a statement really runs, for routing and the audit: pure functions, no I/O.

A client may send SQL that names other SQL: ``EXECUTE q USING 5`` runs the prepared
statement ``q``, whose text travels in the client's ``X-Trino-Prepared-Statement`` header
(``name=urlencoded-sql``, comma separated; Trino compresses long ones as ``$zstd:`` plus
base64url), and ``EXECUTE IMMEDIATE 'SELECT …' USING 5`` (what the ``%%sql`` cells send
for parameters) runs the text of a string literal, possibly written ``U&'\\0053ELECT…'``.
Routing rules and the audit must see that SQL, not the wrapper.

`resolve_statement` finds it for the forms Trino resolves (``EXECUTE``, ``EXECUTE
IMMEDIATE``, ``EXPLAIN … EXECUTE``, ``DESCRIBE INPUT|OUTPUT``, ``DEALLOCATE PREPARE``).
To leave no room between what the gateway read and what Trino runs, the gateway then
forwards only the prepared statements the statement uses, re-encoded by
`prepared_statements_header`: a form the gateway does not recognise reaches Trino without
them and fails there ("Prepared statement not found"), it never runs unseen.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

from ..wire import PREPARED_STATEMENT_HEADER

#: Trino's prefix of a compressed prepared statement (no valid SQL starts with "$").
_ZSTD_PREFIX = "$zstd:"
#: The largest prepared statement the gateway decompresses (a guard against zstd bombs).
MAX_PREPARED_BYTES = 4 * 1024 * 1024


class StatementError(ValueError):
    """The client's prepared statements cannot be read; ``str(e)`` is the user's sentence."""


def _malformed(detail: str) -> StatementError:
    return StatementError(
        f"The X-Trino-Prepared-Statement header is malformed ({detail}); prepare the "
        "statement again."
    )


def _decompress(encoded: str) -> str:
    import zstandard  # a dependency of the trino client; only long statements need it

    try:
        compressed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        size = zstandard.frame_content_size(compressed)
        if size < 0 or size > MAX_PREPARED_BYTES:
            raise _malformed("a compressed statement of unknown or excessive size")
        data = zstandard.ZstdDecompressor().decompress(compressed, max_output_size=size)
        return data.decode("utf-8")
    except (binascii.Error, ValueError, zstandard.ZstdError) as e:
        if isinstance(e, StatementError):
            raise
        raise _malformed("a compressed statement that does not decompress") from None


def parse_prepared_statements(values: Iterable[str]) -> dict[str, str]:
    """The prepared statements (name -> SQL) in ``X-Trino-Prepared-Statement`` values.

    Read as Trino reads them: items split on commas, ``name=value`` with both URL-decoded
    (``+`` is a space), a later item for the same raw name replacing an earlier one, and
    ``$zstd:`` values decompressed. Raises StatementError where Trino refuses the header.
    """
    raw: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            parts = [part.strip() for part in item.split("=")]
            if len(parts) != 2:
                raise _malformed("an item that is not name=value")
            raw[parts[0]] = parts[1]
    prepared: dict[str, str] = {}
    for key, value in raw.items():
        name = unquote_plus(key)
        if name in prepared:
            raise _malformed(f"two statements named {name[:64]!r}")
        sql = unquote_plus(value)
        if sql.startswith(_ZSTD_PREFIX):
            sql = _decompress(sql[len(_ZSTD_PREFIX) :])
            if sql.startswith(_ZSTD_PREFIX):
                raise _malformed("a statement compressed twice")
        prepared[name] = sql
    return prepared


def prepared_statements_header(prepared: Mapping[str, str], names: Iterable[str]) -> str | None:
    """The ``X-Trino-Prepared-Statement`` value carrying exactly the statements *names*
    (those of them in *prepared*), or None if there are none."""
    items = [f"{quote_plus(n)}={quote_plus(prepared[n])}" for n in dict.fromkeys(names)]
    return ",".join(items) or None


@dataclass(frozen=True)
class Resolved:
    """What a statement runs."""

    #: The SQL that runs (what routing and the audit see): the prepared statement of an
    #: ``EXECUTE``, the literal of an ``EXECUTE IMMEDIATE``, else the statement itself.
    sql: str
    #: The statement as the client sent it, when *sql* differs (``EXECUTE q USING 5``).
    client_sql: str | None
    #: The prepared statements the statement needs on the cluster.
    uses: tuple[str, ...] = ()


def resolve_statement(sql: str, prepared: Mapping[str, str]) -> Resolved:
    """What *sql* runs, given the client's *prepared* statements (see the module doc)."""
    text, uses = _resolve(sql, 0, prepared)
    return Resolved(text, None if text == sql else sql, uses)


def _resolve(sql: str, pos: int, prepared: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """The resolved text of ``sql[pos:]`` and the prepared statements it uses."""
    lex = _Lexer(sql, pos)
    lex.skip()
    if lex.keyword("EXPLAIN"):
        # EXPLAIN [ANALYZE] [VERBOSE] [(options)] statement: Trino resolves the statement.
        for word in ("ANALYZE", "VERBOSE"):
            lex.skip()
            lex.keyword(word)
        lex.skip()
        if lex.peek("("):
            lex.skip_parentheses()
            lex.skip()
        inner, uses = _resolve(sql, lex.pos, prepared)
        if not uses and inner == sql[lex.pos :]:
            return sql[pos:], ()
        return sql[pos : lex.pos] + inner, uses
    if lex.keyword("EXECUTE"):
        lex.skip()
        before = lex.pos
        if lex.keyword("IMMEDIATE"):
            lex.skip()
            literal = lex.string_literal()
            if literal is not None:
                return literal, ()
            lex.pos = before
        name = lex.identifier()
        if name is not None and name in prepared:
            return prepared[name], (name,)
        return sql[pos:], ()
    if lex.keyword("DESCRIBE"):
        lex.skip()
        kind = "INPUT" if lex.keyword("INPUT") else "OUTPUT" if lex.keyword("OUTPUT") else None
        if kind:
            lex.skip()
            name = lex.identifier()
            if name is not None and name in prepared:
                return f"DESCRIBE {kind} ({prepared[name]})", (name,)
        return sql[pos:], ()
    if lex.keyword("DEALLOCATE"):
        lex.skip()
        if lex.keyword("PREPARE"):
            lex.skip()
            name = lex.identifier()
            if name is not None and name in prepared:
                return sql[pos:], (name,)
    return sql[pos:], ()


def split_execute_immediate(sql: str) -> tuple[str, str] | None:
    """``(statement, rest)`` of ``EXECUTE IMMEDIATE 'statement' rest`` (``rest`` is the
    ``USING …`` part, possibly empty); None for any other SQL. For engines without
    ``EXECUTE IMMEDIATE`` (PrestoDB), which run it as a prepared statement instead."""
    lex = _Lexer(sql)
    lex.skip()
    if not lex.keyword("EXECUTE"):
        return None
    lex.skip()
    if not lex.keyword("IMMEDIATE"):
        return None
    lex.skip()
    literal = lex.string_literal()
    if literal is None:
        return None
    return literal, sql[lex.pos :]


class _Lexer:
    """Just enough of Trino's lexer for the head of a statement."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def skip(self) -> None:
        """Skip whitespace and comments (``-- …`` to the end of the line, ``/* … */``)."""
        text = self.text
        while self.pos < len(text):
            if text[self.pos] in " \t\r\n":
                self.pos += 1
            elif text.startswith("--", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    return  # unterminated: Trino refuses the statement
                self.pos = end + 2
            else:
                return

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def keyword(self, word: str) -> bool:
        """Consume *word* (any case) if it comes next as a whole word."""
        end = self.pos + len(word)
        if self.text[self.pos : end].upper() != word:
            return False
        if end < len(self.text) and _is_identifier_char(self.text[end]):
            return False
        self.pos = end
        return True

    def identifier(self) -> str | None:
        """Consume an identifier: ``name`` (as written) or a double-quoted one."""
        text, start = self.text, self.pos
        if self.peek('"'):
            return self._quoted('"')
        if start < len(text) and (_is_identifier_char(text[start]) and not text[start].isdigit()):
            end = start + 1
            while end < len(text) and _is_identifier_char(text[end]):
                end += 1
            self.pos = end
            return text[start:end]
        return None

    def string_literal(self) -> str | None:
        """Consume a string literal, ``'…'`` or ``U&'…' [UESCAPE 'c']``; None if none
        (or it is malformed, which Trino refuses)."""
        if self.peek("'"):
            return self._quoted("'")
        if self.text[self.pos : self.pos + 3].upper() != "U&'":
            return None
        self.pos += 2
        raw = self._quoted("'")
        if raw is None:
            return None
        after = self.pos
        self.skip()
        escape = "\\"
        if self.keyword("UESCAPE"):
            self.skip()
            escape = self._quoted("'") or ""
            if len(escape) != 1 or escape in "+'\" \t\r\n" or _is_hex(escape):
                return None
        else:
            self.pos = after
        return _decode_unicode(raw, escape)

    def _quoted(self, quote: str) -> str | None:
        """Consume ``quote … quote`` with doubled quotes inside; the unescaped value."""
        text = self.text
        i = self.pos + 1
        parts = []
        while True:
            end = text.find(quote, i)
            if end < 0:
                return None
            parts.append(text[i:end])
            if text.startswith(quote * 2, end):
                parts.append(quote)
                i = end + 2
                continue
            self.pos = end + 1
            return "".join(parts)

    def skip_parentheses(self) -> None:
        """Skip a parenthesised list (EXPLAIN's options), nested ones included."""
        depth = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "'" or char == '"':
                if self._quoted(char) is None:
                    self.pos = len(self.text)
                continue
            self.pos += 1
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return


def _is_identifier_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def _decode_unicode(raw: str, escape: str) -> str | None:
    """The value of a Unicode string literal's body (``\\0041`` or ``\\+000041``
    escapes, the escape character doubled for itself); None if malformed."""
    out = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char != escape:
            out.append(char)
            i += 1
            continue
        if raw.startswith(escape, i + 1):
            out.append(escape)
            i += 2
            continue
        if raw.startswith("+", i + 1):
            digits, width, i = raw[i + 2 : i + 8], 6, i + 8
        else:
            digits, width, i = raw[i + 1 : i + 5], 4, i + 5
        if len(digits) != width or not _is_hex(digits):
            return None
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        out.append(chr(code))
    return "".join(out)


def resolve_query_info(query: str, prepared_query: str | None) -> Resolved:
    """What a query ran, from Trino's own query info: its ``query`` text and, for an
    ``EXECUTE``, its ``preparedQuery``."""
    if prepared_query:
        return Resolved(prepared_query, None if prepared_query == query else query)
    return resolve_statement(query, {})


def with_prepared_statements(
    headers: Iterable[tuple[str, str]], prepared: Mapping[str, str], uses: Iterable[str]
) -> list[tuple[str, str]]:
    """*headers* with the client's ``X-Trino-Prepared-Statement`` replaced by one carrying
    only the statements *uses* names (re-encoded): Trino runs exactly what was resolved."""
    kept = [(n, v) for n, v in headers if n.lower() != PREPARED_STATEMENT_HEADER.lower()]
    value = prepared_statements_header(prepared, uses)
    if value is not None:
        kept.append((PREPARED_STATEMENT_HEADER, value))
    return kept

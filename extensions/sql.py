"""The ``%%sql`` / ``%sql`` IPython magic: SQL through the DataHub gateway to Trino.

Load it with ``%load_ext datahub.extensions.sql``; configure it with ``%config SqlMagic.x = …``.

A cell's value is the result as a typed pandas DataFrame (so ``_`` and ``Out`` hold it). It
is shown as a compact table (first rows, row count, elapsed time, query id), with a Plotly
chart when the data suits one, and live progress while the query runs. Ctrl-C / kernel
interrupt cancels the query on the server. Query errors are one message, never a traceback.

The pieces: parameters :mod:`datahub.extensions.params`, the statement sent and its source
map :mod:`datahub.extensions.statement`, running it :mod:`datahub.extensions.query`,
progress :mod:`datahub.extensions.progress`, history and clusters
:mod:`datahub.extensions.history`, the type mapping :mod:`datahub.results`, the charts
:mod:`datahub.charts`. This module holds the magic and its error messages.
"""

from __future__ import annotations

import ast
import getpass
import html
import json
import os
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import trino
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Integer, Unicode, default, validate
from traitlets.config import Configurable

from datahub import charts, wire
from datahub.extensions import completer, grid, history, quota, trino_compat
from datahub.extensions.params import bind
from datahub.extensions.progress import Progress, format_summary, human_seconds
from datahub.extensions.query import QueryCancelled, QueryResult, run_query
from datahub.extensions.segments import StorageError
from datahub.extensions.service_client import TOKEN_REFUSED, ServiceClient, ServiceError
from datahub.extensions.statement import (
    SentStatement,
    line_and_column,
    prepare,
    strip_sql,
    wrap_limit,
)
from datahub.results import arrow_on_the_c_heap
from datahub.tls import pinned_session
from datahub.wire import ACT_AS_HEADER, ROUTING_HEADER

__all__ = [
    "ACT_AS_HEADER",
    "ROUTING_HEADER",
    "PLOTLY_MIMETYPE",
    "SqlError",
    "SqlMagic",
    "format_query_error",
    "load_ipython_extension",
    "split_options",
    "strip_sql",
    "wrap_limit",
]

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
#: The chart builder's part of a chart output (JupyterLab's extension draws the builder).
CHART_MIMETYPE = "application/vnd.datahub.chart+json"
CHART_CHOICES = ("none", "auto", *charts.CHART_KINDS)
#: The options the chart builder writes into a cell's first line.
CHART_OPTIONS = ("--chart", "--x", "--y", "--color", "--agg")

# --------------------------------------------------------------------------- errors


class SqlError(Exception):
    """A query problem shown to the user as its message alone, without a traceback.

    IPython calls ``_render_traceback_`` instead of formatting a traceback (the jupysql
    approach), so the cell fails with exactly these lines.
    """

    def __init__(self, message: str, query_id: str | None = None, rows_fetched: int = 0):
        super().__init__(message)
        self.message = message
        #: Trino's id of the failed or cancelled query, when it got one.
        self.query_id = query_id
        #: For a cancelled query: how many rows had arrived when it was interrupted.
        self.rows_fetched = rows_fetched

    def _render_traceback_(self) -> list[str]:
        return self.message.splitlines()


class _Secret(str):
    """A string whose repr hides it: ``%config SqlMagic`` prints trait values with repr."""

    def __repr__(self) -> str:
        return "'<hidden>'" if self else "''"


_LOCATION_PREFIX = re.compile(r"^line \d+:\d+: ")
#: Errors whose message is already a sentence for the user, shown as it is: Trino's access
#: rules, and the gateway's own refusals (quotas, routing, cluster health).
SENTENCE_ERRORS = wire.DATAHUB_ERROR_NAMES


def format_query_error(
    error_name: str | None,
    message: str,
    sql: str,
    offset: int | None = None,
) -> str:
    """One message for a Trino query error; with a location, the SQL line and a caret.

    ``offset`` is where in the user's ``sql`` the error is (Trino's location mapped back
    through what the magic added, see :meth:`SentStatement.locate`). Permission and quota
    errors are shown as Trino (or the gateway) worded them.
    """
    message = _LOCATION_PREFIX.sub("", message.strip())
    if error_name in SENTENCE_ERRORS:
        return message
    if offset is not None and 0 <= offset <= len(sql):
        line, column = line_and_column(sql, offset)
        src = sql.splitlines()[line - 1] if sql.splitlines()[line - 1 :] else ""
        # Keep tabs so the caret lines up under the same column.
        pad = "".join("\t" if ch == "\t" else " " for ch in src[: max(column - 1, 0)])
        head = "Syntax error" if error_name == "SYNTAX_ERROR" else _title(error_name)
        where = f"line {line}, column {column}"
        return f"{head} at {where}: {message}\n    {src}\n    {pad}^"
    if error_name == "SYNTAX_ERROR":
        return f"Syntax error: {message}"
    return f"{_title(error_name)}: {message}" if error_name else message


def _title(error_name: str | None) -> str:
    return (error_name or "Query failed").replace("_", " ").capitalize()


_HTTP_STATUS = re.compile(r"error (\d{3})(?::\s*(.*))?", re.S)


def _error_body_text(body: str) -> str:
    """The text of an HTTP error body as the trino client quotes it (``b'...'``): the
    message of a Trino-format error (the gateway's refusals), else the body itself."""
    if body.startswith(("b'", 'b"')):
        try:
            body = ast.literal_eval(body).decode("utf-8", "replace")
        except (ValueError, SyntaxError):
            body = body[2:-1]
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, TypeError, KeyError):
        return body
    return message if isinstance(message, str) else body


def _gateway_error(err: Exception, gateway_url: str) -> str:
    """A sentence for transport-level failures (HTTP status, unreachable gateway)."""
    text = str(err)
    m = _HTTP_STATUS.search(text)
    if m:
        status = int(m.group(1))
        body = _error_body_text((m.group(2) or "").strip())
        if status == 401:
            return TOKEN_REFUSED
        detail = f": {body[:300]}" if body else "."
        if status == 403:
            return f"The DataHub gateway refused the query{detail}"
        return f"The DataHub gateway answered HTTP {status}{detail}"
    if isinstance(err, trino.exceptions.TrinoConnectionError):
        return (
            f"Cannot reach the DataHub gateway at {gateway_url}; check SqlMagic.gateway_url "
            "or ask your DataHub admin whether the service is up."
        )
    return f"Query failed: {text}"


# --------------------------------------------------------------------------- pure helpers


def option_groups(
    line: str, flags: Iterable[str], valued: Iterable[str]
) -> tuple[list[list[str]], str]:
    """A magic line's leading options, each with its value (``["--x", "col"]``,
    ``["--x=col"]``, ``["--no-display"]``), and the SQL after them.

    ``flags`` take no value, ``valued`` take one (``--x col`` or ``--x=col``). Options stop
    at the first token that is not one of them, so the SQL's own quoting is left alone.
    """
    flags, valued = set(flags), set(valued)
    pos = 0
    groups: list[list[str]] = []
    token = re.compile(r"\s*(\"[^\"]*\"|'[^']*'|\S+)")
    while True:
        m = token.match(line, pos)
        if not m:
            break
        word = m.group(1)
        name = word.split("=", 1)[0]
        if name in flags:
            groups.append([word])
            pos = m.end()
        elif name in valued:
            groups.append([word])
            pos = m.end()
            if "=" not in word:
                v = token.match(line, pos)
                if not v:
                    raise UsageError(f"{name} needs a value")
                groups[-1].append(v.group(1))
                pos = v.end()
        else:
            break
    return groups, line[pos:].strip()


def split_options(line: str, flags: Iterable[str], valued: Iterable[str]) -> tuple[str, str]:
    """Split a magic line into its leading options and the SQL after them (see
    :func:`option_groups`)."""
    groups, rest = option_groups(line, flags, valued)
    return " ".join(word for group in groups for word in group), rest


def _option_value(name: str, value: str) -> list[str]:
    """``--x col`` for a column name, quoted so the magic reads it back as it is."""
    if "," in value and name == "--y":
        raise ValueError(f"a column whose name has a comma ({value!r}) cannot be a --y option")
    if re.fullmatch(r"[^\s'\"]+", value):
        return [f"{name}={value}"] if value.startswith("-") else [name, value]
    if value.startswith("-"):
        raise ValueError(f"the column name {value!r} cannot be written as an option")
    for quote in ('"', "'"):
        if quote not in value:
            return [name, f"{quote}{value}{quote}"]
    raise ValueError(f"the column name {value!r} cannot be written as an option")


def rewrite_chart_options(line: str, spec: charts.ChartSpec | None) -> str:
    """The ``%%sql`` line ``line`` with its chart options (:data:`CHART_OPTIONS`) replaced
    by those that draw ``spec`` (``--chart none`` for ``None``); other options and any SQL
    on the line stay as they were. Raises ``ValueError`` for a line that is not ``%%sql``
    or a column name the options cannot carry."""
    m = re.match(r"^(\s*%%sql)(?=\s|$)(.*)$", line)
    if m is None:
        raise ValueError("only a %%sql cell's first line carries chart options")
    flags, valued = _option_names(SqlMagic.sql.parser)
    groups, rest = option_groups(m.group(2), flags, valued)
    kept = [g for g in groups if g[0].split("=", 1)[0] not in CHART_OPTIONS]
    if spec is None:
        chosen = [["--chart", "none"]]
    else:
        chosen = [["--chart", spec.kind]]
        if spec.x is not None:
            chosen.append(_option_value("--x", spec.x))
        chosen.extend(_option_value("--y", y) for y in spec.y)
        if spec.color is not None:
            chosen.append(_option_value("--color", spec.color))
        if spec.agg is not None:
            chosen.append(["--agg", spec.agg])
    words = [m.group(1), *(w for g in kept + chosen for w in g)]
    return " ".join(words) + (f" {rest}" if rest else "")


def acting_note(act_as: str | None, user: str) -> str:
    """What the summary says of a query an admin ran as another user ("" otherwise)."""
    return f"as {act_as} (acting as admin {user})" if act_as else ""


def _y_columns(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(_unquote(part.strip()) for part in v.split(",") if part.strip())
    return out


def _unquote(value: str | None) -> str | None:
    """A column name as written in an option: ``"nation name"`` or ``'x'`` without the
    quotes (the magic's argument parser keeps them)."""
    if value and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def chart_choice(args: Any) -> dict[str, Any]:
    """The chart the options ask for: kind (``None`` if not given), x, y, colour, agg."""
    return {
        "kind": args.chart,
        "x": _unquote(args.x),
        "y": _y_columns(args.y),
        "color": _unquote(args.color),
        "agg": args.agg,
    }


_SUBCOMMAND = re.compile(
    r"^(?:(?P<history>history)(?:\s+(?P<n>\S+))?|(?P<clusters>clusters)|(?P<quota>quota)"
    r"|(?P<refresh>refresh-completions))$",
    re.I,
)


def parse_subcommand(rest: str, cell: str | None) -> tuple[str, int | None] | None:
    """``("history", N)`` / ``("clusters", None)`` / ``("quota", None)`` for
    ``%sql history [N]`` / ``%sql clusters`` / ``%sql quota``; ``None`` for SQL (no SQL
    statement starts with these words)."""
    if cell is not None and cell.strip():
        return None
    m = _SUBCOMMAND.match(rest.strip())
    if m is None:
        return None
    if m.group("clusters"):
        return "clusters", None
    if m.group("quota"):
        return "quota", None
    if m.group("refresh"):
        return "refresh-completions", None
    n = m.group("n")
    if n is None:
        return "history", None
    if not n.isdigit() or int(n) < 1:
        raise UsageError(f"%sql history takes a number of queries, not {n!r}")
    return "history", int(n)


# --------------------------------------------------------------------------- display

#: Frames returned by the magic, by id, with how to show them. Only these get the compact
#: display; any other DataFrame keeps pandas' own.
_RESULTS: dict[int, tuple[weakref.ref, Callable[[pd.DataFrame], dict]]] = {}


def _remember(df: pd.DataFrame, render: Callable[[pd.DataFrame], dict]) -> None:
    key = id(df)
    _RESULTS[key] = (weakref.ref(df, lambda _ref, key=key: _RESULTS.pop(key, None)), render)


def _renderer_for(df: pd.DataFrame) -> Callable[[pd.DataFrame], dict] | None:
    entry = _RESULTS.get(id(df))
    if entry is None or entry[0]() is not df:
        return None
    return entry[1]


def _footer(df: pd.DataFrame, info: dict[str, Any]) -> str:
    shown = min(info["display_rows"], len(df))
    total = len(df)
    rows = f"{total:,} row{'s' if total != 1 else ''}"
    if shown < total:
        rows = f"showing {shown:,} of {rows}"
    parts = [rows, f"{len(df.columns)} column{'s' if len(df.columns) != 1 else ''}"]
    parts.append(human_seconds(info["elapsed"]))
    if info.get("acting"):
        parts.append(info["acting"])
    if info.get("cluster"):
        parts.append(f"cluster {info['cluster']}")
    if info.get("query_id"):
        parts.append(f"query {info['query_id']}")
    return " · ".join(parts)


def _table_bundle(df: pd.DataFrame, info: dict[str, Any]) -> dict[str, Any]:
    head = df.head(info["display_rows"])
    footer = _footer(df, info)
    table = head.to_html(max_cols=50, border=0, classes="datahub-sql-result")
    bundle: dict[str, Any] = {
        "text/html": (
            f'{table}<div class="datahub-sql-footer"><small>{html.escape(footer)}</small></div>'
        ),
        "text/plain": f"{head.to_string(max_cols=50)}\n{footer}",
    }
    if info.get("grid"):
        # The result grid (JupyterLab): pages served by the kernel; the table above is
        # what other frontends and the gallery show.
        payload = grid.grid_payload(df, info["grid"], info.get("types", ()))
        bundle[grid.GRID_MIMETYPE] = {
            **payload,
            "footer": _footer(df, {**info, "display_rows": len(df)}),
        }
    return bundle


def chart_bundle(df: pd.DataFrame, spec: charts.ChartSpec, fig: dict, rid: str | None) -> dict:
    """A chart output: the Plotly figure, and with a grid id the chart builder's part (the
    result it draws and the choice drawn)."""
    title = re.sub(r"<[^>]+>", " ", fig["layout"]["title"]["text"])
    bundle: dict[str, Any] = {PLOTLY_MIMETYPE: fig, "text/plain": f"<{spec.kind} chart: {title}>"}
    if rid is not None:
        bundle[CHART_MIMETYPE] = {
            "result": rid,
            "spec": {
                "kind": spec.kind,
                "x": spec.x,
                "y": list(spec.y),
                "color": spec.color,
                "agg": spec.agg,
            },
            "columns": [
                {"name": str(c), "kind": charts.column_kind(df.iloc[:, i])}
                for i, c in enumerate(df.columns)
            ],
        }
    return bundle


def result_mimebundle(df: pd.DataFrame, include: Any = None, exclude: Any = None) -> dict | None:
    """The compact display of a frame the magic returned; ``None`` (pandas' own) otherwise."""
    render = _renderer_for(df)
    return None if render is None else render(df)


def _plan_bundle(plan: str) -> dict[str, str]:
    return {
        "text/plain": plan,
        "text/html": f'<pre class="datahub-sql-plan">{html.escape(plan)}</pre>',
    }


# --------------------------------------------------------------------------- the magic


def _env_default(name: str) -> str:
    return os.environ.get(name, "")


@magics_class
class SqlMagic(Magics, Configurable):
    """Run SQL on Trino through the DataHub gateway and get pandas DataFrames back."""

    gateway_url = Unicode(
        help="""URL of the DataHub gateway, which speaks the Trino protocol.

        Defaults to the environment variable DATAHUB_GATEWAY_URL, which the DataHub
        spawner sets for every server, else http://127.0.0.1:8765 (the local stack).
        Example: %config SqlMagic.gateway_url = "http://127.0.0.1:8765"
        """,
    ).tag(config=True)

    @default("gateway_url")
    def _default_gateway_url(self) -> str:
        return os.environ.get(wire.GATEWAY_URL_ENV) or "http://127.0.0.1:8765"

    api_url = Unicode(
        help="""Base URL of the DataHub service's REST API, which serves `%sql history`
        and `%sql clusters`. Defaults to the gateway URL plus /services/datahub/api (the
        service is the JupyterHub service named "datahub").""",
    ).tag(config=True)

    @default("api_url")
    def _default_api_url(self) -> str:
        return wire.service_api_url(self.gateway_url)

    token = Unicode(
        help="""Token sent to the gateway as a bearer token (JWT authentication).

        Defaults to the environment variable JUPYTERHUB_API_TOKEN, the server's hub token,
        which the gateway resolves to your hub user. It is never displayed. Empty sends no
        Authorization header (a plain Trino without authentication, as in tests).
        """,
    ).tag(config=True)

    @default("token")
    def _default_token(self) -> str:
        return _Secret(_env_default(wire.HUB_TOKEN_ENV))

    @validate("token")
    def _hide_token(self, proposal: Any) -> str:
        return _Secret(proposal["value"] or "")

    ca_file = Unicode(
        "",
        help="""PEM file of the CA (or self-signed certificate) to verify an https
        gateway_url and api_url against, and the only one trusted for them:
        REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE, often set to the system bundle, are
        ignored. Empty (the default) verifies against the usual system CAs.
        Example: %config SqlMagic.ca_file = "/etc/datahub/gateway-ca.pem"
        """,
    ).tag(config=True)

    user = Unicode(
        help="""User name sent as X-Trino-User. The gateway ignores it and sets the user
        from the token; it matters only against a Trino without the gateway. Defaults to
        the environment variable JUPYTERHUB_USER, else the login name.""",
    ).tag(config=True)

    @default("user")
    def _default_user(self) -> str:
        return _env_default(wire.HUB_USER_ENV) or getpass.getuser()

    display_rows = Integer(
        10, help="How many rows the result table shows; the DataFrame always has them all."
    ).tag(config=True)
    catalog = Unicode(
        None,
        allow_none=True,
        help="Default catalog for queries (e.g. 'tpch'); --catalog overrides.",
    ).tag(config=True)
    schema = Unicode(
        None, allow_none=True, help="Default schema for queries (e.g. 'tiny'); --schema overrides."
    ).tag(config=True)
    chart_point_budget = Integer(
        10_000,
        help="""Most points a chart sends to the browser. Larger results are binned,
        aggregated or downsampled (the chart title says so), so a million-row result still
        draws quickly and the notebook stays small.""",
    ).tag(config=True)
    chart_max_bytes = Integer(
        2_000_000,
        help="""Upper bound on a chart's JSON size in bytes. A chart whose points would be
        bigger (long text labels, many series) is drawn with fewer points.""",
    ).tag(config=True)
    history_rows = Integer(
        20, help="How many queries `%sql history` lists when no number is given."
    ).tag(config=True)
    source = Unicode(
        "datahub-sql",
        help="Trino 'source' of the queries; Trino resource groups and query history use it.",
    ).tag(config=True)
    grid_results = Integer(
        10,
        help="""How many of the latest results the result grid can page, sort, filter and
        download (JupyterLab). The kernel keeps references to them (no copies; IPython's
        Out holds them too); an older result's grid shows its first rows and asks to run
        the cell again. 0 turns the grid off (the HTML table only).""",
    ).tag(config=True)
    show_progress = Bool(
        True,
        help="""Show live progress (state, splits, rows, bytes, time, cluster, query id) while
        a query runs; it becomes the one-line summary when the query ends.""",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any):
        Configurable.__init__(self, config=shell.config if shell is not None else None, **kwargs)
        Magics.__init__(self, shell=shell)
        # Makes "%config SqlMagic.x = ..." reach this instance.
        if shell is not None:
            self.shell.configurables.append(self)
        self._connections: dict[tuple, trino.dbapi.Connection] = {}
        #: The results the JupyterLab grid pages through (datahub.extensions.grid).
        self.results = grid.ResultRegistry(self.grid_results)
        self.grid_service = grid.GridService(self.results, chart=self._builder_chart)

    # -- connection ---------------------------------------------------------------------

    def connection(
        self, catalog: str | None = None, schema: str | None = None, act_as: str | None = None
    ) -> trino.dbapi.Connection:
        """A client connection to the gateway; reused while the settings are the same so
        session state (``USE``, ``SET SESSION``) carries from cell to cell.

        With *act_as*, every request (the statement and its follow-ups, which the gateway
        authorises again) asks to run as that user; a separate connection, so its session
        never mixes with your own.
        """
        catalog = catalog or self.catalog
        schema = schema or self.schema
        token = str(self.token)
        key = (
            self.gateway_url,
            self.ca_file,
            self.user,
            token,
            self.source,
            catalog,
            schema,
            act_as,
        )
        conn = self._connections.get(key)
        if conn is None:
            url = urlparse(
                self.gateway_url if "//" in self.gateway_url else f"http://{self.gateway_url}"
            )
            if not url.hostname:
                raise UsageError(f"SqlMagic.gateway_url {self.gateway_url!r} is not a URL")
            scheme = url.scheme or "http"
            conn = trino.dbapi.connect(
                host=url.hostname,
                port=url.port or (443 if scheme == "https" else 80),
                http_scheme=scheme,
                user=self.user,
                auth=trino.auth.JWTAuthentication(token) if token else None,
                # The gateway may run on plain HTTP on the loopback or inside the cluster.
                allow_insecure_auth=scheme == "http",
                source=self.source,
                catalog=catalog,
                schema=schema,
                http_headers={ACT_AS_HEADER: act_as} if act_as else None,
                # One session per connection: the trino client adds its headers to it.
                http_session=pinned_session(self.ca_file) if self.ca_file else None,
            )
            self._connections[key] = conn
        return conn

    # -- the magic ----------------------------------------------------------------------

    @no_var_expand
    @line_cell_magic
    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="Also store the DataFrame in this variable.")
    @argument(
        "--chart",
        choices=CHART_CHOICES,
        default=None,
        help="Chart to draw: auto (default for %%%%sql) picks one that suits the data; "
        "none draws none (default for the %%sql line form).",
    )
    @argument("--x", metavar="COL", help="Column on the chart's x axis.")
    @argument(
        "--y",
        metavar="COL",
        action="append",
        help="Column(s) on the y axis; repeat or give a comma list.",
    )
    @argument("--color", metavar="COL", help="Column that splits the chart into coloured series.")
    @argument(
        "--agg",
        choices=charts.AGGREGATIONS,
        default=None,
        help="Make one point per x (and colour) value from its rows: the sum, mean, min or "
        "max of each y column, or count the rows (line, bar and scatter charts). The "
        "chart builder writes it with the other chart options.",
    )
    @argument("--no-display", action="store_true", help="Show no table or chart, only the summary.")
    @argument("--catalog", help="Catalog for this query (default SqlMagic.catalog).")
    @argument("--schema", help="Schema for this query (default SqlMagic.schema).")
    @argument(
        "--limit",
        type=int,
        metavar="N",
        help="Return at most N rows, applied by Trino (the query is wrapped in a LIMIT).",
    )
    @argument(
        "--cluster",
        "--routing-group",
        dest="cluster",
        metavar="GROUP",
        help="Routing group (cluster) the gateway should send the query to.",
    )
    @argument(
        "--as",
        dest="act_as",
        metavar="USER",
        help="Run the query as USER, under their groups, routing and quota (hub admins "
        "only, where the DataHub allows it); recorded with you as the acting admin, and "
        "USER sees it in their history.",
    )
    @argument(
        "--explain",
        action="store_true",
        help="Show Trino's plan for the query (EXPLAIN) instead of running it.",
    )
    @argument("-h", "--help", action="store_true", help="Show this help.")
    def sql(self, line: str = "", cell: str | None = None) -> pd.DataFrame | None:
        """Run SQL on Trino through the DataHub gateway; the value is a pandas DataFrame.

        Cell form: ``%%sql [options]`` and the SQL below. Line form:
        ``df = %sql [options] SELECT ...``.

        Parameters: ``{{ name }}`` binds the value of the notebook variable ``name`` (Trino
        receives it as a value, never as SQL text); ``{{ ident(name) }}`` inserts it as a
        quoted table/column name (a tuple gives "catalog"."schema"."table"). Markers inside
        strings and comments are left alone.

        A plan (``--explain``, or a typed ``EXPLAIN``) is shown as text; ``-o`` keeps it
        as a string. Hub admins can run a query as another user with ``--as USER`` where
        the DataHub allows it (audited with both names; the user sees it). Also:
        ``%sql history [N]`` lists your last N queries, ``%sql clusters`` the clusters
        and their health, ``%sql quota`` your quota and today's usage. Defaults:
        ``%config SqlMagic.display_rows``, ``.catalog``, ``.schema``,
        ``.chart_point_budget``, ``.history_rows``.
        Interrupt the kernel to cancel a running query.
        """
        parser = self.sql.parser
        flags, valued = _option_names(parser)
        opt_text, rest = split_options(line, flags, valued)
        args = parse_argstring(self.sql, opt_text)
        if args.help:
            print(parser.format_help())
            return None
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a Python variable name, not {args.out!r}")
        sub = parse_subcommand(rest, cell)
        if sub is not None:
            if args.act_as:
                raise UsageError(
                    f"--as runs queries only; %sql {sub[0]} shows your own, and an admin's "
                    "view of another user is on the DataHub admin pages."
                )
            return self._subcommand(*sub, args)
        if cell is None:
            sql_text, chart_default = rest, "none"
        else:
            sql_text, chart_default = f"{rest}\n{cell}" if rest else cell, "auto"
        user_sql = strip_sql(sql_text)
        if not user_sql:
            raise UsageError("No SQL given. Write the query after %sql, or below %%sql.")
        stmt = bind(user_sql, self.shell.user_ns if self.shell is not None else {})
        if args.limit is not None:
            stmt = wrap_limit(stmt, args.limit)
        conn = self.connection(args.catalog, args.schema, args.act_as)
        sent = prepare(stmt, trino_compat.format_parameter(conn), explain_plan=args.explain)

        result = self._run(sent, user_sql, args)
        df = result.frame
        if args.explain or _is_plan(df):
            plan = "\n".join(str(v) for v in df.iloc[:, 0]) if len(df) else ""
            if args.out:
                self.shell.user_ns[args.out] = plan
            if not args.no_display:
                display(_plan_bundle(plan), raw=True)
            return None
        if result.update_type and len(df.columns) == 0:
            return None  # DDL and the like: the summary line said it all
        if args.out:
            self.shell.user_ns[args.out] = df
        if args.no_display:
            return None
        self.results.size = self.grid_results
        rid = None
        if self.grid_results > 0:
            rid = self.results.add(df, name=result.query_id or "result")
        self._show_chart(df, args, args.chart or chart_default, rid)
        info = {
            "display_rows": self.display_rows,
            "elapsed": result.elapsed,
            "query_id": result.query_id,
            "cluster": result.cluster,
            "acting": acting_note(args.act_as, self.user),
            "grid": rid,
            "types": [c.get("type") for c in result.columns],
        }
        _remember(df, lambda frame: _table_bundle(frame, info))
        return df

    def _run(self, sent: SentStatement, user_sql: str, args: Any) -> QueryResult:
        conn = self.connection(args.catalog, args.schema, args.act_as)
        progress = Progress(jupyter=self._in_jupyter(), enabled=self.show_progress)
        headers = {ROUTING_HEADER: args.cluster} if args.cluster else None
        try:
            result = run_query(conn, sent.text, stats_callback=progress, http_headers=headers)
        except QueryCancelled as cancelled:
            progress.clear()
            raise SqlError(
                "Query cancelled", cancelled.query_id, rows_fetched=cancelled.rows_fetched
            ) from None
        except trino.exceptions.TrinoQueryError as err:
            progress.clear()
            offset = None
            if err.error_location:
                line, column = err.error_location
                offset = sent.locate(line, column, syntax_error=err.error_name == "SYNTAX_ERROR")
            msg = format_query_error(err.error_name, err.message, user_sql, offset)
            raise self._error(msg, err.query_id) from None
        except (trino.exceptions.HttpError, trino.exceptions.TrinoConnectionError) as err:
            progress.clear()
            raise self._error(_gateway_error(err, self.gateway_url)) from None
        except StorageError as err:
            progress.clear()
            raise self._error(str(err)) from None
        what = "EXPLAIN" if args.explain else result.update_type
        summary = format_summary(
            None if args.explain else len(result.frame),
            result.elapsed,
            result.query_id,
            result.stats,
            cluster=result.cluster,
            what=what,
        )
        if args.act_as:
            summary += " · " + acting_note(args.act_as, self.user)
        progress.done(summary)
        return result

    def service(self) -> ServiceClient:
        """The client of the DataHub service's REST API (``api_url``, the token, the CA)."""
        return ServiceClient(self.api_url, str(self.token), ca_file=self.ca_file)

    def _subcommand(self, name: str, n: int | None, args: Any) -> pd.DataFrame | None:
        try:
            if name == "refresh-completions":  # datahub.extensions.completer
                print(self.completer.refresh())
                return None
            if name == "quota":
                display(quota.format_quota(self.service().quota()), raw=True)
                return None
            if name == "history":
                df = history.fetch_history(self.service(), n or self.history_rows)
                render = history.render_history
            else:
                df = history.fetch_clusters(self.service())
                render = history.render_clusters
        except ServiceError as err:
            raise self._error(err.message) from None
        if args.out:
            self.shell.user_ns[args.out] = df
        if args.no_display:
            return None
        _remember(df, render)
        return df

    def _error(self, message: str, query_id: str | None = None) -> SqlError:
        token = str(self.token)
        if token:
            message = message.replace(token, "<token>")
        return SqlError(message, query_id)

    def _show_chart(self, df: pd.DataFrame, args: Any, kind: str, rid: str | None) -> None:
        if kind == "none" or len(df.columns) == 0:
            return
        explicit = bool(kind != "auto" or args.x or args.y or args.color or args.agg)
        try:
            drawn = self._chart(df, {**chart_choice(args), "kind": kind})
        except ValueError as err:
            if explicit:
                raise UsageError(str(err)) from None
            return  # an automatic chart is a nicety; the table is still shown
        if drawn is None:
            if explicit:
                print("No chart: the result has no columns that suit one.")
            return
        display(chart_bundle(df, *drawn, rid), raw=True)

    def _chart(self, df: pd.DataFrame, choice: dict) -> tuple[charts.ChartSpec, dict] | None:
        """The spec and figure for a choice of kind, x, y, colour and aggregation (the
        magic's options, or the chart builder's); ``None`` when nothing suits the data.
        Raises ``ValueError`` with the sentence for the user."""
        spec = charts.complete_spec(
            df, choice.get("kind"), choice.get("x"), choice.get("y") or [], choice.get("color"),
            choice.get("agg"),
        )  # fmt: skip
        if spec is None:
            return None
        try:
            fig = charts.build_figure(
                df, spec, self.chart_point_budget, max_bytes=self.chart_max_bytes
            )
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"Cannot draw a {spec.kind} chart of this result: {err}") from None
        return spec, fig

    def _builder_chart(self, result: grid.GridResult, choice: dict, line: str) -> dict:
        """The chart builder's request: the new chart output's bundle (``None`` for no
        chart) and the cell's first line with the options that draw it again."""
        choice = _builder_choice(choice, result.frame)
        try:
            drawn = None if choice["kind"] == "none" else self._chart(result.frame, choice)
            if choice["kind"] != "none" and drawn is None:
                raise ValueError("No chart: the result has no columns that suit one.")
            spec = drawn[0] if drawn else None
            new_line = (
                rewrite_chart_options(line, spec) if line.lstrip().startswith("%%sql") else None
            )
        except ValueError as err:
            raise grid.GridError(_sentence(str(err))) from None
        bundle = chart_bundle(result.frame, *drawn, result.rid) if drawn else None
        return {"bundle": bundle, "line": new_line}

    def _in_jupyter(self) -> bool:
        return getattr(self.shell, "kernel", None) is not None


def _builder_choice(choice: dict, df: pd.DataFrame) -> dict:
    """The chart builder's choice checked: kind, existing columns, aggregation."""
    kind = choice.get("kind")
    if kind not in CHART_CHOICES:
        raise grid.GridError(f"Choose a chart kind: {', '.join(CHART_CHOICES)}.")
    names = {str(c) for c in df.columns}

    def column(value: Any) -> str | None:
        return value if isinstance(value, str) and value in names else None

    y = choice.get("y")
    agg = choice.get("agg")
    return {
        "kind": kind,
        "x": column(choice.get("x")),
        "y": [c for c in (y if isinstance(y, list) else []) if column(c)],
        "color": column(choice.get("color")),
        "agg": agg if agg in charts.AGGREGATIONS else None,
    }


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _is_plan(df: pd.DataFrame) -> bool:
    """A typed-in ``EXPLAIN …``: one text column named "Query Plan"."""
    return list(df.columns) == ["Query Plan"]


def _option_names(parser: Any) -> tuple[set[str], set[str]]:
    flags: set[str] = set()
    valued: set[str] = set()
    for action in parser._actions:
        (flags if action.nargs == 0 else valued).update(action.option_strings)
    return flags, valued


def load_ipython_extension(ip: Any) -> None:
    """Register the magic and the compact display of its results (``%load_ext``)."""
    arrow_on_the_c_heap()  # results convert with less system CPU (see there)
    magic = SqlMagic(ip)
    ip.register_magics(magic)
    grid.register(ip, magic.grid_service)  # the result grid's comm (JupyterLab)
    completer.register(ip, magic)  # SQL completion in %%sql cells (sets magic.completer)
    formatter = ip.display_formatter.mimebundle_formatter
    previous = formatter.lookup_by_type(pd.DataFrame) if _has_printer(formatter) else None
    if previous is _show_dataframe:
        return

    ip.display_formatter.mimebundle_formatter.for_type(pd.DataFrame, _show_dataframe)
    _previous_printers[pd.DataFrame] = previous


def _has_printer(formatter: Any) -> bool:
    try:
        formatter.lookup_by_type(pd.DataFrame)
        return True
    except KeyError:
        return False


#: The DataFrame printer that was registered before ours, for frames that are not results.
_previous_printers: dict[type, Any] = {}


def _show_dataframe(df: pd.DataFrame, *args: Any, **kwargs: Any) -> dict | None:
    bundle = result_mimebundle(df)
    if bundle is not None:
        return bundle
    previous = _previous_printers.get(pd.DataFrame)
    return previous(df) if previous is not None else None

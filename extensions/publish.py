"""The ``%datahub`` IPython magic: publish a notebook to the DataHub gallery from a kernel.

Load it with ``%load_ext datahub.extensions.publish``; then::

    %datahub publish "Sales by region.ipynb" --title "Sales by region" --tag sales \\
        --share group:analysts --share user:bob:editor -m "first version"

Publishing the same file again adds a version; ``--to ID`` publishes a version of a
notebook someone shared with you as editor. The saved file is what gets published, so
save the notebook first. The request goes to the DataHub service's REST API with the
server's own ``JUPYTERHUB_API_TOKEN``; the service checks every permission.

The argument parsing and the request body are plain functions (`parse_publish_args`,
`publish_body`), the magic a thin shell around them.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display
from traitlets import Float, Unicode, default
from traitlets.config import Configurable

from datahub import wire
from datahub.extensions.service_client import ServiceClient

__all__ = [
    "DataHubMagics",
    "PublishArgs",
    "load_ipython_extension",
    "parse_publish_args",
    "publish_body",
    "workspace_path",
]

USAGE = """\
%datahub publish PATH [--title TITLE] [--description TEXT] [--tag TAG ...]
                      [--share group:NAME | user:NAME[:editor] ...] [--public]
                      [--to ID] [-m MESSAGE]

Publish the notebook file PATH (save it first) to the DataHub gallery. Publishing the
same file again adds a version. --share grants a hub group or user the viewer role
(or editor with ':editor'); --public makes it visible to everyone in the company;
--to ID publishes a new version of shared notebook ID (you must be its owner or editor).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # never exit the kernel, never print usage
        raise UsageError(f"%datahub publish: {message}. See %datahub help.")


def _parser() -> _Parser:
    parser = _Parser(prog="%datahub publish", add_help=False)
    parser.add_argument("path")
    parser.add_argument("--title")
    parser.add_argument("--description")
    parser.add_argument("--tag", action="append", default=[])
    parser.add_argument("--share", action="append", default=[])
    parser.add_argument("--public", action="store_true", default=None)
    parser.add_argument("--to", type=int)
    parser.add_argument("-m", "--message")
    return parser


@dataclass
class PublishArgs:
    """What ``%datahub publish …`` asked for."""

    path: str
    title: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    shares: list[str] = field(default_factory=list)
    public: bool | None = None
    to: int | None = None
    message: str | None = None


def parse_publish_args(line: str) -> PublishArgs:
    """The arguments of ``%datahub publish`` (after the word ``publish``); UsageError
    with one line when they are wrong."""
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise UsageError(f"%datahub publish: {e} (check your quotes).") from None
    ns = _parser().parse_args(words)
    return PublishArgs(
        path=ns.path,
        title=ns.title,
        description=ns.description,
        tags=ns.tag,
        shares=ns.share,
        public=ns.public,
        to=ns.to,
        message=ns.message,
    )


def workspace_path(path: Path, root: Path) -> str | None:
    """``path`` relative to the workspace ``root`` (as JupyterLab names it), or None
    when it lies outside."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def publish_body(args: PublishArgs, notebook: dict[str, Any], source: str | None) -> dict:
    """The JSON body of ``POST api/notebooks`` for these arguments."""
    body: dict[str, Any] = {"content": notebook}
    if args.to is not None:
        body["id"] = args.to
    elif source:
        body["path"] = source
    # No title means "keep it" for a republished file; a new one is named after the file.
    for key, value in (
        ("title", args.title),
        ("description", args.description),
        ("message", args.message),
        ("public", args.public),
    ):
        if value is not None:
            body[key] = value
    if args.tags:
        body["tags"] = args.tags
    if args.shares:
        body["shares"] = args.shares
    return body


class _Secret(str):
    def __repr__(self) -> str:  # %config prints trait values with repr
        return "'<hidden>'" if self else "''"


@magics_class
class DataHubMagics(Magics, Configurable):
    """``%datahub publish`` (and ``%datahub help``)."""

    service_url = Unicode(
        help="""Base URL of the DataHub service's REST API.

        Defaults to $DATAHUB_GATEWAY_URL (set by the DataHub spawner: the service's
        listener serves both the Trino protocol and the API) + "/services/datahub/".
        Example: %config DataHubMagics.service_url = "http://datahub:8765/services/datahub/"
        """,
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        gateway = os.environ.get(wire.GATEWAY_URL_ENV) or "http://127.0.0.1:8765"
        return gateway.rstrip("/") + wire.SERVICE_PREFIX

    token = Unicode(
        help="""Hub API token sent to the service: defaults to $JUPYTERHUB_API_TOKEN, the
        server's own token (scoped to the DataHub service), so nothing needs setting.
        """,
    ).tag(config=True)

    @default("token")
    def _default_token(self) -> str:
        return _Secret(os.environ.get(wire.HUB_TOKEN_ENV, ""))

    workspace_root = Unicode(
        help="""Root of the workspace as JupyterLab shows it (the home directory by
        default), so the service knows a republished file by its path.

        Example: %config DataHubMagics.workspace_root = "/home/jovyan/work"
        """,
    ).tag(config=True)

    @default("workspace_root")
    def _default_workspace_root(self) -> str:
        return str(Path.home())

    timeout = Float(
        60.0,
        help="Seconds to wait for the DataHub service to answer a publish.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        Configurable.__init__(self, config=shell.config if shell else None, **kwargs)
        Magics.__init__(self, shell=shell)
        #: The service's answer to the last successful publish (id, version, url, …).
        self.last_published: dict | None = None

    @line_magic
    def datahub(self, line: str) -> None:
        """%datahub publish PATH [--title …] [--share group:NAME] … (see %datahub help)"""
        command, _, rest = line.strip().partition(" ")
        if command in ("", "help", "--help", "-h"):
            print(USAGE)
            return
        if command != "publish":
            raise UsageError(f"Unknown %datahub command {command!r}; try %datahub help.")
        self.publish(parse_publish_args(rest))

    def publish(self, args: PublishArgs) -> dict:
        path = Path(args.path).expanduser()
        if path.suffix != ".ipynb":
            raise UsageError(f"{args.path} is not a notebook; publish an .ipynb file.")
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"No file {args.path} (relative to {Path.cwd()}).") from None
        except (OSError, ValueError) as e:
            raise UsageError(f"Cannot read {args.path} as a notebook: {e}") from None
        body = publish_body(args, notebook, workspace_path(path, Path(self.workspace_root)))
        if not self.token:
            raise UsageError("No hub token ($JUPYTERHUB_API_TOKEN) in this kernel's environment.")
        api_url = self.service_url.rstrip("/") + "/api"
        # ServiceError is one sentence (no traceback); the service checks every permission.
        answer = ServiceClient(api_url, str(self.token), timeout=self.timeout).publish(body)
        self.last_published = answer
        self._show(answer)
        return answer

    def _show(self, answer: dict) -> None:
        verb = "Published" if answer.get("created") else "Published a new version of"
        text = f"{verb} “{answer['title']}” (version {answer['version']})"
        link = answer["version_url"]  # a path on the hub's own origin, like JupyterLab's
        display(
            {
                "text/plain": f"{text}: {link}",
                "text/html": (
                    f'{html.escape(text)}: <a href="{html.escape(link)}" target="_blank" '
                    'rel="noopener">open it in the gallery</a>'
                ),
            },
            raw=True,
        )


def load_ipython_extension(ip: Any) -> None:
    """Register ``%datahub`` (``%load_ext datahub.extensions.publish``)."""
    ip.register_magics(DataHubMagics(ip))

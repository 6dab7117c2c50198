"""A shared notebook's settings (title, description, tags, sharing, company-wide
visibility), parsed and checked from the API's JSON or a page's form. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SharingError
from .permissions import Share, parse_shares

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_TAGS = 12
MAX_MESSAGE = 500
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,39}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

SETTING_FIELDS = ("title", "description", "tags", "shares", "public")


@dataclass(frozen=True)
class NotebookSettings:
    """Settings to apply; ``None`` leaves a setting as it is."""

    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] | None = None
    shares: tuple[Share, ...] | None = None
    public: bool | None = None
    given: frozenset[str] = field(default_factory=frozenset)

    @property
    def empty(self) -> bool:
        return not self.given


def clean_title(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SharingError("Give the notebook a title.")
    title = re.sub(r"\s+", " ", _CONTROL.sub("", value)).strip()
    if len(title) > MAX_TITLE:
        raise SharingError(f"The title is longer than {MAX_TITLE} characters; shorten it.")
    return title


def clean_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SharingError("The description must be text.")
    description = _CONTROL.sub("", value).strip()
    if len(description) > MAX_DESCRIPTION:
        raise SharingError(
            f"The description is longer than {MAX_DESCRIPTION} characters; shorten it."
        )
    return description


def clean_message(value: Any) -> str:
    """A version's note (what changed), optional."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SharingError("The version message must be text.")
    message = re.sub(r"\s+", " ", _CONTROL.sub("", value)).strip()
    if len(message) > MAX_MESSAGE:
        raise SharingError(f"The version message is longer than {MAX_MESSAGE} characters.")
    return message


def parse_tags(value: Any) -> tuple[str, ...]:
    """Tags from a list or a comma/space separated string: lower case, each at most 40
    letters, digits or ``_ . + -``, at most 12, duplicates dropped, order kept."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = [t for t in re.split(r"[,\s]+", value) if t]
    elif isinstance(value, list | tuple) and all(isinstance(t, str) for t in value):
        items = [t.strip() for t in value if t.strip()]
    else:
        raise SharingError('Tags must be a list of words, e.g. ["sales", "weekly"].')
    tags: list[str] = []
    for item in items:
        tag = item.lstrip("#").lower()
        if not _TAG.match(tag):
            raise SharingError(
                f"Tag {item!r} is not allowed: use up to 40 letters, digits, '_', '.', '+' "
                "or '-', starting with a letter or digit."
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise SharingError(f"At most {MAX_TAGS} tags, please.")
    return tuple(tags)


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "on", "1", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "off", "0", "no", ""):
        return False
    raise SharingError(f"{name} must be true or false.")


def parse_settings(data: Mapping[str, Any], owner: str | None = None) -> NotebookSettings:
    """The settings present in ``data`` (JSON body or form), checked.

    ``shares`` is a list of ``"group:analysts"`` / ``"user:bob:editor"`` strings or
    ``{"kind", "name", "role"}`` objects; ``tags`` a list or a comma-separated string.
    """
    given = frozenset(k for k in SETTING_FIELDS if k in data and data[k] is not None)
    return NotebookSettings(
        title=clean_title(data["title"]) if "title" in given else None,
        description=clean_description(data["description"]) if "description" in given else None,
        tags=parse_tags(data["tags"]) if "tags" in given else None,
        shares=tuple(parse_shares(data["shares"], owner=owner)) if "shares" in given else None,
        public=parse_bool(data["public"], "public") if "public" in given else None,
        given=given,
    )


def shares_from_text(text: str) -> list[str]:
    """The share lines of a page's text area: one grant per line or comma-separated."""
    return [part.strip() for part in re.split(r"[\n,]+", text or "") if part.strip()]


def publish_form_settings(form: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of the publish page's form as API fields, leaving out what is left
    empty: publishing a new version from the page must not wipe the description, tags
    or sharing the owner set before (the settings form is where they are cleared)."""
    data: dict[str, Any] = {}
    for name in ("title", "description", "tags"):
        if str(form.get(name) or "").strip():
            data[name] = form[name]
    shares = shares_from_text(str(form.get("shares") or ""))
    if shares:
        data["shares"] = shares
    if form.get("public"):
        data["public"] = True
    return data

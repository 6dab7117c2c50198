"""The configuration reference (docs/configuration.md), generated from the traitlets help.

Every DataHub option is a traitlets trait whose ``help=`` is its documentation. This
module walks DataHub's configurable classes and renders those traits as Markdown, using
traitlets' own machinery (``class_traits(config=True)``, ``trait.help`` wrapped as
``Class.class_get_trait_help`` wraps it, ``trait.default_value_repr()``), so the page says
exactly what ``jupyterhub --help-all`` says and cannot drift from the code::

    datahub config-reference --write docs/configuration.md

A class shows the traits DataHub defines or redefines, the inherited ones whose default a
DataHub class computes, and the upstream ones a deployment must set (``UPSTREAM_TRAITS``).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from traitlets import Container, TraitType, Union
from traitlets.config import Configurable
from traitlets.utils.text import wrap_paragraphs

#: The command that regenerates the page; the page and the tests name it.
REGENERATE = "datahub config-reference --write docs/configuration.md"


@dataclass(frozen=True)
class Part:
    """One class (``module:Class``) in one group, optionally only some of its traits."""

    target: str
    only: frozenset[str] | None = None  # these traits only
    without: frozenset[str] = frozenset()  # all but these

    def load(self) -> type[Configurable]:
        module, _, name = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as e:
            if (e.name or "datahub").split(".")[0] == "datahub":
                raise
            raise RuntimeError(
                f"The configuration reference needs {module} ({e}); install DataHub with "
                "all its extras: pip install 'jupyter-datahub[kubernetes]'."
            ) from e

    def keeps(self, name: str) -> bool:
        return (self.only is None or name in self.only) and name not in self.without


@dataclass(frozen=True)
class Group:
    title: str
    intro: str
    parts: tuple[Part, ...]


# DataHubService's options about Trino clusters; its others are about the gateway itself.
_ROUTING = frozenset(
    {
        "clusters",
        "default_routing_group",
        "routing_rules",
        "routing_group_access",
        "routing_hook",
        "health_check_interval",
        "health_check_timeout",
        "health_check_failures",
        "connect_timeout",
        "read_timeout",
        "max_connections",
    }
)
_SERVICE = "datahub.service.app:DataHubService"
_IN_HUB_CONFIG = "Set in `jupyterhub_config.py`, which the hub and the DataHub service both read."

GROUPS: tuple[Group, ...] = (
    Group(
        "Clusters and routing",
        f"The Trino clusters behind the gateway and which one runs each query. {_IN_HUB_CONFIG}",
        (Part(_SERVICE, only=_ROUTING),),
    ),
    Group(
        "Gateway",
        "The DataHub service: its listeners, the follow-up URI signature, the store, query "
        f"accounting, and how it identifies users from their hub tokens. {_IN_HUB_CONFIG}",
        (
            Part(_SERVICE, without=_ROUTING),
            Part("datahub.identity:IdentityResolver"),
            Part("datahub.catalog.catalog:MetadataCatalog"),  # SQL completion's metadata
        ),
    ),
    Group(
        "Query events (Kafka)",
        "Query events sent to a Kafka topic from a durable outbox in the store (off until "
        "`bootstrap_servers` is set; the event schema is "
        "`datahub/events/schema/query-event-v1.json`). `datahub up --kafka` starts a local "
        f"broker. {_IN_HUB_CONFIG}",
        (
            Part("datahub.events.config:KafkaEvents"),
            Part("datahub.events.watch:CrashWatch"),  # crash detection
        ),
    ),
    Group(
        "Quotas",
        "The usage day and the defaults of quota policies; the policies themselves are "
        f"edited on the admin pages, the REST API or `datahub quota`. {_IN_HUB_CONFIG}",
        (Part("datahub.quotas.manager:QuotaManager"),),
    ),
    Group(
        "Sharing",
        "The shared-notebook gallery (`SharedNotebooks`, {_IN_HUB_CONFIG[0].lower()}"
        f"{_IN_HUB_CONFIG[1:-1]}) and the `%datahub publish` magic in users' kernels "
        "(`DataHubMagics`, set in a notebook with `%config DataHubMagics.timeout = 120` or in "
        "`ipython_config.py`).",
        (
            Part("datahub.sharing.config:SharedNotebooks"),
            Part("datahub.extensions.publish:DataHubMagics"),
        ),
    ),
    Group(
        "LDAP sign-in",
        "The hub's sign-in with the company directory. The ldapauthenticator and JupyterHub "
        "options listed here are the ones a deployment sets; the others keep their "
        f"upstream meaning. {_IN_HUB_CONFIG}",
        (Part("datahub.ldap.authenticator:DataHubLDAPAuthenticator"),),
    ),
    Group(
        "Spawner",
        "Users' servers: `DataHubLocalSpawner` on one machine, `DataHubKubeSpawner` on "
        "Kubernetes; the options of JupyterHub's `Spawner` and of the spawner underneath "
        f"apply too. {_IN_HUB_CONFIG}",
        (
            Part("datahub.spawners.local:DataHubLocalSpawner"),
            Part("datahub.spawners.kube:DataHubKubeSpawner"),
        ),
    ),
    Group(
        "SQL cells",
        "The `%%sql` magic in users' kernels: set in a notebook with "
        "`%config SqlMagic.display_rows = 20`, or for everyone in `ipython_config.py`.",
        (
            Part("datahub.extensions.sql:SqlMagic"),
            Part("datahub.extensions.completer:SqlCompleter"),
        ),
    ),
)

#: Inherited options a deployment sets, shown with the DataHub class that inherits them.
UPSTREAM_TRAITS: dict[str, tuple[str, ...]] = {
    "DataHubLDAPAuthenticator": (
        "server_address",
        "server_port",
        "tls_strategy",
        "tls_kwargs",
        "lookup_dn_search_user",
        "lookup_dn_search_password",
        "lookup_dn_search_filter",
        "lookup_dn_user_dn_attribute",
        "user_search_base",
        "user_attribute",
        "allowed_groups",
        "admin_users",
        "auth_refresh_age",
    ),
}

#: Configurable classes of JupyterHub a jupyterhub_config.py may set besides DataHub's
#: classes and their bases.
UPSTREAM_CLASSES = (
    "jupyterhub.app:JupyterHub",
    "jupyterhub.proxy:ConfigurableHTTPProxy",
    "jupyterhub.crypto:CryptKeeper",
    "jupyterhub.services.auth:HubOAuth",
)


def _is_datahub(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "datahub"


@dataclass(frozen=True)
class Option:
    """One documented trait of one class."""

    cls: type[Configurable]
    trait: TraitType

    @property
    def name(self) -> str:
        return f"c.{self.cls.__name__}.{self.trait.name}"

    @property
    def help(self) -> str:
        """The help text exactly as ``class_get_trait_help`` prints it (unindented)."""
        return "\n\n".join(wrap_paragraphs(self.trait.help, 76)) if self.trait.help else ""

    @property
    def type(self) -> str:
        return _type_name(self.trait)

    @property
    def default(self) -> str | None:
        """``trait.default_value_repr()``, as the traitlets help shows it, with the
        package's directory written ``<datahub>`` so the page is the same everywhere."""
        try:
            value = self.trait.default_value_repr()
        except Exception:  # noqa: BLE001 - traitlets leaves out defaults it cannot show too
            return None
        for directory, name in _package_directories():
            value = value.replace(directory, name)
        return value

    @property
    def computed_by(self) -> type | None:
        """The DataHub class that computes this trait's default (``@default``), if any."""
        for klass in self.cls.__mro__:
            if self.trait.name in vars(klass).get("_trait_default_generators", {}):
                return klass if _is_datahub(klass) else None
            if klass is self.trait.this_class:
                return None
        return None


def _package_directories() -> list[tuple[str, str]]:
    """The directories of the package and of its subpackages that live elsewhere in a
    checkout (an editable install maps extensions/, spawners/ and templates/ into it),
    each with the name the reference writes for it."""
    import datahub.extensions
    import datahub.spawners
    import datahub.templates

    subpackages = (datahub.extensions, datahub.spawners, datahub.templates)
    pairs = [
        (str(Path(m.__file__).parent), "<datahub>/" + m.__name__.split(".")[-1])
        for m in subpackages
    ]
    return [*pairs, (str(Path(datahub.__file__).parent), "<datahub>")]


def _type_name(trait: TraitType) -> str:
    name = type(trait).__name__
    if isinstance(trait, Union):
        return f"{name}({', '.join(_type_name(t) for t in trait.trait_types)})"
    inner = getattr(trait, "_trait", None) if isinstance(trait, Container) else None
    return f"{name}({_type_name(inner)})" if isinstance(inner, TraitType) else name


def documented_traits(cls: type[Configurable]) -> list[TraitType]:
    """The config traits of ``cls`` the reference shows, in definition order: DataHub's own
    (also redefined upstream ones), inherited ones whose default DataHub computes, and the
    ``UPSTREAM_TRAITS`` of the class."""
    upstream = set(UPSTREAM_TRAITS.get(cls.__name__, ()))
    traits = []
    for name, trait in cls.class_traits(config=True).items():
        option = Option(cls, trait)
        if _is_datahub(trait.this_class) or option.computed_by or name in upstream:
            traits.append(trait)
    missing = upstream - {t.name for t in traits}
    if missing:
        raise RuntimeError(f"{cls.__name__} has no config option {', '.join(sorted(missing))}.")
    return sorted(traits, key=_definition_order(cls))


def _definition_order(cls: type) -> Callable[[TraitType], tuple]:
    """Sort key: DataHub's own options in source order (base classes first), then the rest
    alphabetically."""
    order: dict[str, int] = {}
    position = itertools.count()
    for klass in reversed(cls.__mro__):
        if _is_datahub(klass):
            for name, value in vars(klass).items():
                if isinstance(value, TraitType):
                    order[name] = next(position)  # a redefinition takes the later place
    return lambda trait: (trait.name not in order, order.get(trait.name, 0), trait.name)


def options(group: Group) -> Iterator[tuple[type[Configurable], list[Option]]]:
    """``(class, options)`` for each class of the group, as the page lists them."""
    for part in group.parts:
        cls = part.load()
        yield cls, [Option(cls, t) for t in documented_traits(cls) if part.keeps(t.name)]


def reference_classes() -> list[type[Configurable]]:
    """Every class the reference documents, in the page's order, each once."""
    classes: list[type[Configurable]] = []
    for group in GROUPS:
        for part in group.parts:
            cls = part.load()
            if cls not in classes:
                classes.append(cls)
    return classes


# --- Markdown -------------------------------------------------------------------------


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def _code(text: str) -> str:
    """Inline code that survives backticks in ``text``."""
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _block(text: str) -> list[str]:
    fence = "`" * max(3, max((len(m) + 1 for m in re.findall(r"`{3,}", text)), default=0))
    return [f"{fence}text", text, fence]


def _render_option(option: Option) -> list[str]:
    facts = [f"Type: {_code(option.type)}"]
    if option.default is not None:
        facts.append(f"Default: {_code(option.default)}")
    if "Enum" in type(option.trait).__name__:
        facts.append(f"Choices: {option.trait.info()}")
    if option.computed_by:
        facts.append(f"Default computed by `{option.computed_by.__name__}` when not set")
    lines = [f"#### `{option.name}`", "", " · ".join(facts), ""]
    if option.help:
        lines += [*_block(option.help), ""]
    return lines


def _docstring(cls: type) -> str:
    return inspect.cleandoc(vars(cls).get("__doc__") or "")


def render() -> str:
    """The whole reference as Markdown."""
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from the traitlets help by `{REGENERATE}`; do not edit. -->",
        "",
        "Every DataHub option is a [traitlets](https://traitlets.readthedocs.io/) option, "
        "set as `c.<Class>.<option> = value`. Each entry below is the option's own help, "
        "exactly as traitlets' `--help-all` prints it; the page is generated from the code with "
        f"`{REGENERATE}`, and a test keeps it equal to the code. `<datahub>` in a default "
        "stands for the directory of the installed `datahub` package.",
        "",
    ]
    lines += [f"- [{g.title}](#{_anchor(g.title)})" for g in GROUPS] + [""]
    for group in GROUPS:
        lines += [f"## {group.title}", "", group.intro, ""]
        for cls, opts in options(group):
            lines += [f"### {cls.__name__}", ""]
            if _docstring(cls):
                lines += [_docstring(cls), ""]
            for option in opts:
                lines += _render_option(option)
    return "\n".join(lines).rstrip("\n") + "\n"


# --- Checking c.Class.option lines elsewhere ---------------------------------------------

#: ``c.Class.option`` in a configuration file, ``%config Class.option`` in a notebook.
SETTING = re.compile(r"(?:\bc\.|%config\s+)(\w+)\.(\w+)")


def configurable_classes() -> dict[str, type[Configurable]]:
    """Class name → class, for every class a DataHub configuration may name: DataHub's,
    their configurable bases, and JupyterHub's own (``UPSTREAM_CLASSES``)."""
    found: dict[str, type[Configurable]] = {}
    upstream = [Part(target).load() for target in UPSTREAM_CLASSES]
    for cls in [*reference_classes(), *upstream]:
        for klass in cls.__mro__:
            if isinstance(klass, type) and issubclass(klass, Configurable):
                found.setdefault(klass.__name__, klass)
    return found


def unknown_settings(text: str) -> list[str]:
    """Each ``c.Class.option`` (or ``%config Class.option``) in ``text`` that names no
    config option, as ``"line N: Class.option: reason"``."""
    classes = configurable_classes()
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for class_name, trait_name in SETTING.findall(line):
            cls = classes.get(class_name)
            if cls is None:
                reason = "no such configurable class"
            elif trait_name not in cls.class_traits(config=True):
                reason = f"{class_name} has no config option {trait_name}"
            else:
                continue
            problems.append(f"line {number}: {class_name}.{trait_name}: {reason}")
    return problems

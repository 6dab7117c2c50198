"""Shared notebooks in the store, on SQLite and PostgreSQL: publish, versions, search,
visibility, settings, unpublish, and all-or-nothing writes."""

import itertools
import json

import nbformat
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from datahub.sharing import models
from datahub.sharing.errors import SharingError
from datahub.sharing.metadata import NotebookSettings, parse_settings
from datahub.sharing.notebooks import canonical_notebook, sql_text
from datahub.sharing.permissions import Share, Viewer, access_for
from datahub.sharing.search import parse_query
from datahub.sharing.store import NewVersion, SharedNotebookStore
from datahub.store import Base

TABLES = {
    "shared_notebooks",
    "shared_notebook_versions",
    "shared_notebook_shares",
    "shared_notebook_tags",
}
ALICE = Viewer("alice", frozenset({"analysts"}))
BOB = Viewer("bob", frozenset({"analysts"}))
DAVE = Viewer("dave", frozenset({"analysts", "contractors"}))
CAROL = Viewer("carol", frozenset({"datahub-admins"}), admin=True)


def version(sql: str, message: str = "") -> NewVersion:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Report"),
        nbformat.v4.new_code_cell(f"%%sql\n{sql}"),
    ]
    text = canonical_notebook(json.loads(nbformat.writes(nb)), 10**6)
    return NewVersion(content=text, sql=sql_text(json.loads(text)), message=message)


def settings(title: str, **kwargs) -> NotebookSettings:
    return parse_settings({"title": title, **kwargs})


@pytest.fixture
def notebooks(store):
    return SharedNotebookStore(store)


def test_models_and_migrations_agree(store):
    assert models.SharedNotebook.__table__.metadata is Base.metadata
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    def table_of(diff):
        item = diff[0] if isinstance(diff, list) else diff
        for part in item[1:]:
            name = getattr(part, "name", None) if not isinstance(part, str) else part
            table = getattr(part, "table", None)
            if table is not None:
                return table.name
            if name in TABLES:
                return name
        return None

    ours = [d for d in diffs if table_of(d) in TABLES]
    assert ours == []
    assert set(sa.inspect(store.engine).get_table_names()) >= TABLES


def test_publishing_creates_a_notebook_with_its_first_version(notebooks):
    record, first = notebooks.create(
        "alice",
        settings("Revenue", tags="sales, weekly", shares=["group:analysts"], description="d"),
        version("SELECT revenue FROM orders", "first"),
        source_path="reports/revenue.ipynb",
    )
    assert (record.owner, record.title, record.latest_version) == ("alice", "Revenue", 1)
    assert record.tags == ("sales", "weekly")
    assert record.shares == (Share("group", "analysts"),)
    assert first.number == 1 and first.author == "alice" and first.message == "first"
    assert notebooks.find_by_source("alice", "reports/revenue.ipynb").id == record.id
    assert notebooks.find_by_source("bob", "reports/revenue.ipynb") is None


def test_each_publish_is_a_new_version_and_history_is_newest_first(notebooks):
    record, _ = notebooks.create("alice", settings("Revenue"), version("SELECT 1"))
    record, second = notebooks.add_version(record.id, "bob", version("SELECT 2", "by bob"))
    assert second.number == 2 and record.latest_version == 2
    assert [(v.number, v.author) for v in notebooks.versions(record.id)] == [
        (2, "bob"),
        (1, "alice"),
    ]
    assert "SELECT 1" in notebooks.version(record.id, 1).content
    assert notebooks.version(record.id).number == 2
    assert notebooks.version(record.id, 3) is None


def test_search_matches_title_description_tags_owner_and_sql(notebooks):
    a, _ = notebooks.create(
        "alice", settings("Revenue", public=True), version("SELECT sum(totalprice) FROM orders")
    )
    b, _ = notebooks.create(
        "bob",
        settings("Churn", description="Customers who left", tags="retention", public=True),
        version("SELECT custkey FROM customer"),
    )

    def ids(q):
        return {r.id for r in notebooks.search(DAVE, parse_query(q)).notebooks}

    assert ids("totalprice") == {a.id}  # a word in the SQL
    assert ids("TOTALPRICE orders") == {a.id}
    assert ids("left") == {b.id}
    assert ids("retention") == {b.id} == ids("tag:retention")
    assert ids("owner:alice") == {a.id}
    assert ids("bob") == {b.id}
    assert ids("select") == {a.id, b.id}
    assert ids("100%") == set()  # LIKE wildcards are taken literally


def test_search_follows_the_latest_version_sql(notebooks):
    record, _ = notebooks.create("alice", settings("R", public=True), version("SELECT oldcolumn"))
    notebooks.add_version(record.id, "alice", version("SELECT newcolumn"))
    assert notebooks.search(BOB, parse_query("newcolumn")).total == 1
    assert notebooks.search(BOB, parse_query("oldcolumn")).total == 0


def test_listing_agrees_with_the_permission_rule(notebooks):
    grants = [
        (),
        (Share("group", "analysts"),),
        (Share("user", "bob"),),
        (Share("group", "contractors", "editor"),),
        (Share("user", "dave", "editor"), Share("group", "analysts")),
    ]
    created = []
    for (owner, public), shares in itertools.product(
        [("alice", False), ("bob", False), ("alice", True)], grants
    ):
        record, _ = notebooks.create(
            owner,
            settings(f"{owner}-{len(created)}", public=public, shares=[s.spec for s in shares]),
            version("SELECT 1"),
        )
        created.append(record)
    for viewer in (ALICE, BOB, DAVE, CAROL, Viewer("zoe")):
        expected = {
            r.id for r in created if access_for(viewer, r.owner, r.public, r.shares).can_view
        }
        listed = notebooks.search(viewer, limit=500)
        assert {r.id for r in listed.notebooks} == expected, viewer
        assert listed.total == len(expected)
        mine = {r.id for r in notebooks.search(viewer, filter="mine", limit=500).notebooks}
        assert mine == {r.id for r in created if r.owner == viewer.name}
        shared = {r.id for r in notebooks.search(viewer, filter="shared", limit=500).notebooks}
        assert shared == {
            r.id
            for r in created
            if r.owner != viewer.name
            and any(
                (s.kind == "user" and s.name == viewer.name)
                or (s.kind == "group" and s.name in viewer.groups)
                for s in r.shares
            )
        }


def test_sorting_by_views_copies_and_recency_with_paging(notebooks):
    first, _ = notebooks.create("alice", settings("First", public=True), version("SELECT 1"))
    second, _ = notebooks.create("alice", settings("Second", public=True), version("SELECT 2"))
    for _ in range(3):
        notebooks.count(first.id, "views")
    notebooks.count(second.id, "copies")
    assert [r.id for r in notebooks.search(BOB, sort="views").notebooks] == [first.id, second.id]
    assert [r.id for r in notebooks.search(BOB, sort="copies").notebooks] == [second.id, first.id]
    notebooks.add_version(first.id, "alice", version("SELECT 3"))
    assert [r.id for r in notebooks.search(BOB, sort="recent").notebooks][0] == first.id
    page = notebooks.search(BOB, limit=1, offset=1)
    assert page.total == 2 and len(page.notebooks) == 1
    assert notebooks.get(first.id).views == 3


def test_settings_replace_tags_and_shares_and_keep_the_rest(notebooks):
    record, _ = notebooks.create(
        "alice", settings("R", tags="a, b", shares=["group:analysts"]), version("SELECT 1")
    )
    updated = notebooks.update_settings(
        record.id, parse_settings({"tags": ["b", "c"], "shares": ["user:bob:editor"]})
    )
    assert updated.tags == ("b", "c")
    assert updated.shares == (Share("user", "bob", "editor"),)
    assert updated.title == "R" and updated.latest_version == 1


def test_unpublishing_removes_versions_shares_and_tags(notebooks, store):
    record, _ = notebooks.create(
        "alice", settings("R", tags="a", shares=["group:analysts"]), version("SELECT 1")
    )
    notebooks.add_version(record.id, "alice", version("SELECT 2"))
    notebooks.unpublish(record.id)
    assert notebooks.get(record.id) is None
    with store.engine.connect() as conn:
        for table in TABLES:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0


def test_a_failing_publish_stores_nothing(notebooks, store):
    broken = NotebookSettings(title="R", tags=("dup", "dup"), given=frozenset({"title", "tags"}))
    with pytest.raises(SharingError) as error:
        notebooks.create("alice", broken, version("SELECT 1"))
    assert error.value.status == 409
    with store.engine.connect() as conn:
        for table in TABLES:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0


def test_the_same_workspace_file_cannot_become_two_notebooks(notebooks):
    notebooks.create("alice", settings("R"), version("SELECT 1"), source_path="r.ipynb")
    with pytest.raises(SharingError) as error:
        notebooks.create("alice", settings("R2"), version("SELECT 1"), source_path="r.ipynb")
    assert error.value.status == 409
    assert notebooks.search(ALICE).total == 1

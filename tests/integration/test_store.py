"""The store migrates itself on SQLite and PostgreSQL."""

import sqlalchemy as sa


def test_migrate_brings_every_feature_branch_to_its_head(store):
    assert store.current_heads() == store.expected_heads()
    assert store.current_heads()  # at least the base revision


def test_migrate_is_idempotent(store):
    before = store.current_heads()
    store.migrate()
    assert store.current_heads() == before


def test_sessions_commit_on_success_and_roll_back_on_error(store):
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE scratch (n integer)"))
    with store.session() as session:
        session.execute(sa.text("INSERT INTO scratch VALUES (1)"))
    try:
        with store.session() as session:
            session.execute(sa.text("INSERT INTO scratch VALUES (2)"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with store.session() as session:
        assert session.execute(sa.text("SELECT n FROM scratch")).scalars().all() == [1]

"""The trino client's private parts behind one module (datahub.extensions.trino_compat):
the supported versions, checked once, and one sentence outside them."""

from __future__ import annotations

import pytest
import trino
import trino.client
import trino.dbapi

from datahub.extensions import trino_compat
from datahub.extensions.sql import SqlMagic

WANTED = "trino>=0.332.0,<0.341.0"


@pytest.mark.parametrize("version", ["0.332.0", "0.336.1", "0.340.0", "0.340.2.dev3", "v0.335"])
def test_versions_inside_the_range_are_supported(version):
    assert trino_compat.version_problem(version) is None


@pytest.mark.parametrize("version", ["0.331.0", "0.330", "0.341.0", "0.400.0", "1.0.0", "rc"])
def test_versions_outside_the_range_get_one_sentence_naming_the_range(version):
    assert trino_compat.version_problem(version) == (
        f"The installed trino client ({version}) is not one %%sql supports ({WANTED}); ask "
        f"your DataHub admin to install a supported one (pip install '{WANTED}')."
    )


def test_an_unknown_version_says_so():
    assert trino_compat.version_problem("").startswith(
        "The installed trino client (unknown version) is not one %%sql supports"
    )


def test_the_installed_client_is_supported_and_has_the_private_parts_used():
    trino_compat.check_supported()
    assert callable(trino.dbapi.Connection._create_request)
    assert callable(trino.dbapi.Cursor._format_prepared_param)
    assert callable(trino.client.TrinoRequest._process_error)
    assert callable(trino.client.TrinoQuery._to_segments)
    assert callable(trino.client.SegmentIterator)


@pytest.fixture
def unsupported_trino(monkeypatch):
    monkeypatch.setattr(trino, "__version__", "0.999.0")
    trino_compat._installed_problem.cache_clear()
    yield
    monkeypatch.undo()
    trino_compat._installed_problem.cache_clear()


def test_the_version_is_read_once(unsupported_trino, monkeypatch):
    with pytest.raises(trino_compat.UnsupportedTrinoClient):
        trino_compat.check_supported()
    monkeypatch.setattr(trino, "__version__", "0.340.0")
    with pytest.raises(trino_compat.UnsupportedTrinoClient):
        trino_compat.check_supported()  # the first answer stands for the process


def test_the_magic_refuses_an_unsupported_client_in_one_line(unsupported_trino):
    magic = SqlMagic(shell=None, gateway_url="http://127.0.0.1:1", token="t")
    with pytest.raises(trino_compat.UnsupportedTrinoClient) as err:
        magic.sql("", "SELECT 1")
    assert err.value._render_traceback_() == [trino_compat.version_problem("0.999.0")]

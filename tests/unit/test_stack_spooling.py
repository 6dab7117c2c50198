"""The local stack's spooling settings: Trino's retrieval mode (`spooling_config`,
`TrinoServer`, ``datahub up --spooling``) and where each cluster spools in the S3 storage
(`S3Storage.spooling_properties`)."""

from __future__ import annotations

import pytest

from datahub import cli
from datahub.stack.ldap import Slapd
from datahub.stack.local import LocalStack
from datahub.stack.s3 import S3Storage
from datahub.stack.trino import RETRIEVAL_MODES, TrinoServer, spooling_config


def test_segments_go_through_the_coordinator_unless_told_otherwise():
    assert spooling_config()["protocol.spooling.retrieval-mode"] == "COORDINATOR_PROXY"
    assert spooling_config("STORAGE")["protocol.spooling.retrieval-mode"] == "STORAGE"
    assert set(RETRIEVAL_MODES) >= {"STORAGE", "COORDINATOR_PROXY"}


def test_an_unknown_retrieval_mode_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"'storage'.*STORAGE, COORDINATOR_STORAGE_REDIRECT"):
        spooling_config("storage")
    with pytest.raises(ValueError, match="Unknown spooling retrieval mode 'DIRECT'"):
        TrinoServer(
            tmp_path,
            name="x",
            ldap_url="ldap://127.0.0.1:1",
            secrets={},
            groups={},
            spooling={},
            spooling_retrieval_mode="DIRECT",
        )


def test_the_shared_secret_is_new_for_each_start():
    key = "protocol.spooling.shared-secret-key"
    assert spooling_config()[key] != spooling_config()[key]


def test_each_cluster_can_spool_under_its_own_prefix_unencrypted(tmp_path):
    storage = S3Storage(tmp_path, port=9999)
    assert storage.spooling_properties()["fs.location"] == "s3://spooling/"
    properties = storage.spooling_properties("b/")
    assert properties["fs.location"] == "s3://spooling/b/"
    assert properties["s3.endpoint"] == "http://127.0.0.1:9999"
    # Pre-signed URIs of encrypted segments need the key's headers; S3Proxy has no SSE-C.
    assert properties["fs.segment.encryption"] == "false"


def test_a_prefix_must_be_a_folder(tmp_path):
    with pytest.raises(ValueError, match="ending in '/'"):
        S3Storage(tmp_path).spooling_properties("b")


# ------------------------------------------------------------ datahub up --spooling


def up_options(*argv: str) -> dict:
    return cli.stack_options(cli.build_parser().parse_args(["up", *argv]))


@pytest.mark.parametrize(
    ("choice", "mode"),
    [
        ("proxy", "COORDINATOR_PROXY"),
        ("storage", "STORAGE"),
        ("redirect", "COORDINATOR_STORAGE_REDIRECT"),
    ],
)
def test_datahub_up_starts_trino_spooling_in_the_mode_asked_for(tmp_path, choice, mode):
    stack = LocalStack(tmp_path / "state", tmp_path / "hub.py", **up_options("--spooling", choice))
    assert stack.spooling is True
    stack.slapd = Slapd(tmp_path / "ldap", {})
    stack.storage = S3Storage(tmp_path, port=9999)
    (trino,) = stack._make_trinos()
    assert trino.spooling_retrieval_mode == mode
    assert trino.spooling == stack.storage.spooling_properties()


def test_datahub_up_spools_through_the_coordinator_unless_told_otherwise():
    options = up_options()
    assert options["spooling"] is True
    assert options["spooling_retrieval_mode"] == "COORDINATOR_PROXY"


def test_datahub_up_can_leave_spooling_off(tmp_path):
    stack = LocalStack(tmp_path / "state", tmp_path / "hub.py", **up_options("--spooling", "off"))
    assert stack.spooling is False


def test_datahub_up_refuses_a_mode_it_does_not_know(capsys):
    with pytest.raises(SystemExit):
        up_options("--spooling", "worker")
    assert "invalid choice: 'worker'" in capsys.readouterr().err

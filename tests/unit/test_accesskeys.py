"""Access keys for `batchform server --auth`: what the environment and credentials files give.

Mistakes in either are configuration errors that say where the mistake is, never a secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchform.errors import ConfigurationError
from batchform.server.accesskeys import load_access_keys


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "credentials"
    path.write_text(text, encoding="utf-8")
    return path


def test_keys_come_from_the_environment() -> None:
    env = {"BATCHFORM_AUTH_KEYS": "AKID1:secret1, AKID2:se:cr%et2 ,"}

    assert load_access_keys(env, None) == {"AKID1": "secret1", "AKID2": "se:cr%et2"}


def test_keys_come_from_every_section_of_a_credentials_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[default]\naws_access_key_id = AKID1\naws_secret_access_key = pc%t/secret1\n"
        "[team]\naws_access_key_id=AKID2\naws_secret_access_key=secret2\nregion=eu-west-1\n"
        "[role]\nrole_arn = arn:aws:iam::123456789012:role/reader\nsource_profile = default\n",
    )

    assert load_access_keys({}, path) == {"AKID1": "pc%t/secret1", "AKID2": "secret2"}


def test_keys_from_the_environment_and_a_file_are_combined(tmp_path: Path) -> None:
    path = write(tmp_path, "[default]\naws_access_key_id=AKID1\naws_secret_access_key=s1\n")

    keys = load_access_keys({"BATCHFORM_AUTH_KEYS": "AKID2:s2,AKID1:s1"}, path)

    assert keys == {"AKID1": "s1", "AKID2": "s2"}


@pytest.mark.parametrize("entry", ["AKID1", "AKID1:", ":hunter2", "AKID1:hunter2,broken"])
def test_a_malformed_environment_entry_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="BATCHFORM_AUTH_KEYS entry") as raised:
        load_access_keys({"BATCHFORM_AUTH_KEYS": entry}, None)

    assert "hunter2" not in str(raised.value)  # a secret never reaches a log


def test_a_section_with_half_a_key_names_the_file_and_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[default]\naws_access_key_id=AKID1\n")

    with pytest.raises(ConfigurationError) as raised:
        load_access_keys({}, path)

    message = str(raised.value)
    assert str(path) in message and "[default]" in message
    assert "aws_secret_access_key" in message


def test_a_file_that_is_not_ini_is_a_configuration_error(tmp_path: Path) -> None:
    path = write(tmp_path, "aws_access_key_id = AKID1\n")  # no [section]

    with pytest.raises(ConfigurationError, match="not valid INI") as raised:
        load_access_keys({}, path)

    assert str(path) in str(raised.value)


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere"

    with pytest.raises(ConfigurationError, match="cannot read credentials file"):
        load_access_keys({"BATCHFORM_AUTH_KEYS": "AKID1:s1"}, path)


def test_one_id_with_two_secrets_is_a_configuration_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[default]\naws_access_key_id=AKID1\naws_secret_access_key=s1\n")

    with pytest.raises(ConfigurationError, match="AKID1 has two different secrets"):
        load_access_keys({"BATCHFORM_AUTH_KEYS": "AKID1:other"}, path)


def test_no_key_at_all_is_a_configuration_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[default]\nregion = us-east-1\n")

    with pytest.raises(ConfigurationError, match="at least one access key") as raised:
        load_access_keys({"BATCHFORM_AUTH_KEYS": " "}, path)

    assert str(path) in str(raised.value)

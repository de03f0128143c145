"""The access keys `batchform server --auth` accepts, from the environment or a file.

BATCHFORM_AUTH_KEYS holds `AKID:SECRET` entries separated by commas; a shared-credentials
file (INI, like ~/.aws/credentials) adds one key for every section with both
aws_access_key_id and aws_secret_access_key. Mistakes are `ConfigurationError`s whose
messages name the entry or section at fault but never echo a secret.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

from batchform.errors import ConfigurationError

AUTH_KEYS_ENV = "BATCHFORM_AUTH_KEYS"


def load_access_keys(env: Mapping[str, str], credentials_file: Path | None) -> dict[str, str]:
    """Access key id → secret, from BATCHFORM_AUTH_KEYS and/or a shared-credentials file.

    BATCHFORM_AUTH_KEYS holds `AKID:SECRET` entries separated by commas; the file is INI
    like ~/.aws/credentials, and every section with aws_access_key_id and
    aws_secret_access_key adds one key.
    """
    keys: dict[str, str] = {}
    sources = [(AUTH_KEYS_ENV, _keys_from_env(env.get(AUTH_KEYS_ENV, "")))]
    if credentials_file is not None:
        sources.append((str(credentials_file), _keys_from_file(credentials_file)))
    for source, found in sources:
        _merge_keys(keys, found, source)
    if not keys:
        raise ConfigurationError(_no_keys_message(credentials_file))
    return keys


def _keys_from_env(value: str) -> list[tuple[str, str]]:
    entries = [entry.strip() for entry in value.split(",")]
    return [_env_entry(entry, index) for index, entry in enumerate(entries, 1) if entry]


def _env_entry(entry: str, index: int) -> tuple[str, str]:
    # Secrets may contain ':' (never the id), so split at the first one only.
    key_id, _, secret = entry.partition(":")
    key_id, secret = key_id.strip(), secret.strip()
    if not key_id or not secret:
        # Name the entry by position and id only: the message must not echo a secret.
        raise ConfigurationError(
            f"{AUTH_KEYS_ENV} entry {index} ('{key_id}:...') is not of the form "
            "ACCESS_KEY_ID:SECRET_ACCESS_KEY"
        )
    return key_id, secret


def _keys_from_file(path: Path) -> list[tuple[str, str]]:
    # No interpolation: a '%' in a secret is a literal character, not a reference.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except OSError as exc:
        raise ConfigurationError(f"cannot read credentials file {path}: {exc}") from exc
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"credentials file {path} is not valid INI: {exc}") from exc
    found = (_file_entry(path, parser[name]) for name in parser.sections())
    return [entry for entry in found if entry is not None]


def _file_entry(path: Path, section: configparser.SectionProxy) -> tuple[str, str] | None:
    key_id = section.get("aws_access_key_id", "").strip()
    secret = section.get("aws_secret_access_key", "").strip()
    if not key_id and not secret:
        return None  # a profile without static keys (a role, SSO) has nothing for us
    if not key_id or not secret:
        missing = "aws_secret_access_key" if key_id else "aws_access_key_id"
        raise ConfigurationError(
            f"credentials file {path}, section [{section.name}]: {missing} is missing or empty"
        )
    return key_id, secret


def _merge_keys(keys: dict[str, str], found: list[tuple[str, str]], source: str) -> None:
    for key_id, secret in found:
        if keys.get(key_id, secret) != secret:
            # Two secrets for one id is a mistake; picking one would lock out half the users.
            raise ConfigurationError(f"access key id {key_id} has two different secrets ({source})")
        keys[key_id] = secret


def _no_keys_message(credentials_file: Path | None) -> str:
    where = f"{AUTH_KEYS_ENV} is empty"
    if credentials_file is not None:
        where += f" and {credentials_file} has no aws_access_key_id/aws_secret_access_key pair"
    return (
        f"authentication needs at least one access key, but {where}; "
        f"set {AUTH_KEYS_ENV}=ACCESS_KEY_ID:SECRET_ACCESS_KEY or give a credentials file"
    )

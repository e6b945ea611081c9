from __future__ import annotations

import base64
import os

import pytest

from domain.customers.contacts import normalise_contact
from infra.crypto import (
    DEV_MASTER_KEY,
    BlindIndex,
    InsecureMasterKey,
    fingerprint,
    load_master_key,
)
from infra.errors import ConfigurationError


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


class TestMasterKey:
    def test_development_default_when_unset(self) -> None:
        assert load_master_key({}) == DEV_MASTER_KEY

    def test_production_refuses_a_missing_key(self) -> None:
        with pytest.raises(InsecureMasterKey, match="CRM_MASTER_KEY"):
            load_master_key({"CRM_ENV": "production"})

    def test_production_refuses_the_development_key(self) -> None:
        with pytest.raises(InsecureMasterKey, match="development master key"):
            load_master_key({"CRM_ENV": "production", "CRM_MASTER_KEY": b64(DEV_MASTER_KEY)})

    def test_production_takes_a_real_key(self) -> None:
        key = os.urandom(32)
        assert load_master_key({"CRM_ENV": "production", "CRM_MASTER_KEY": b64(key)}) == key

    def test_url_safe_base64_without_padding(self) -> None:
        key = os.urandom(32)
        raw = base64.urlsafe_b64encode(key).decode().rstrip("=")
        assert load_master_key({"CRM_MASTER_KEY": raw}) == key

    @pytest.mark.parametrize("value", ["not base64 at all!", b64(b"short")])
    def test_malformed_keys_are_configuration_errors(self, value: str) -> None:
        with pytest.raises(ConfigurationError, match="CRM_MASTER_KEY"):
            load_master_key({"CRM_MASTER_KEY": value})

    def test_fingerprints_tell_keys_apart_without_revealing_them(self) -> None:
        a, b = os.urandom(32), os.urandom(32)
        assert fingerprint(a) != fingerprint(b)
        assert fingerprint(a) == fingerprint(a)
        assert a.hex()[:16] != fingerprint(a)


class TestBlindIndex:
    def test_equal_contacts_hash_equal(self) -> None:
        index = BlindIndex(os.urandom(32))
        assert index.digest("email", " Ada@Example.ORG ") == index.digest(
            "email", "ada@example.org"
        )
        assert index.digest("phone", "+36 (1) 234-5678") == index.digest("phone", "+3612345678")

    def test_kinds_and_keys_separate_the_digests(self) -> None:
        key = os.urandom(32)
        assert BlindIndex(key).digest("email", "1") != BlindIndex(key).digest("phone", "1")
        assert BlindIndex(key).digest("email", "a@b") != BlindIndex(os.urandom(32)).digest(
            "email", "a@b"
        )

    def test_plaintext_is_not_in_the_digest(self) -> None:
        digest = BlindIndex(os.urandom(32)).digest("email", "ada@example.org")
        assert len(digest) == 32
        assert b"ada" not in digest

    def test_normalisation(self) -> None:
        assert normalise_contact("email", "  X@Y.z") == "x@y.z"
        assert normalise_contact("phone", "06 30 123 4567") == "06301234567"
        with pytest.raises(ValueError, match="unknown contact kind"):
            normalise_contact("fax", "1")

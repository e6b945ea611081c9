from __future__ import annotations

import pytest

from infra.store.url import BadStoreURL, parse_store_url


class TestStoreURL:
    @pytest.mark.parametrize(
        ("url", "path"),
        [
            ("sqlite:///crm.db", "crm.db"),
            ("sqlite:///data/crm.db", "data/crm.db"),
            ("sqlite:////var/lib/crm.db", "/var/lib/crm.db"),
            ("sqlite:///:memory:", ":memory:"),
        ],
    )
    def test_sqlite_paths_as_in_sqlalchemy(self, url: str, path: str) -> None:
        parsed = parse_store_url(url)
        assert (parsed.scheme, parsed.target) == ("sqlite", path)

    def test_relative_stays_relative_and_absolute_stays_absolute(self) -> None:
        assert not parse_store_url("sqlite:///crm.db").path.is_absolute()
        assert parse_store_url("sqlite:////tmp/crm.db").path.is_absolute()

    @pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
    def test_postgres_with_schema(self, scheme: str) -> None:
        parsed = parse_store_url(f"{scheme}://u:p@db:5433/crm?schema=s1&sslmode=disable")
        assert parsed.scheme == "postgresql"
        assert parsed.schema == "s1"
        assert parsed.target == "postgresql://u:p@db:5433/crm?sslmode=disable"

    @pytest.mark.parametrize("url", ["crm.db", "mysql://x/y", "sqlite://crm.db", "sqlite:///"])
    def test_bad_urls_say_what_is_expected(self, url: str) -> None:
        with pytest.raises(BadStoreURL):
            parse_store_url(url)

    def test_sqlite_synchronous_option(self) -> None:
        assert parse_store_url("sqlite:///crm.db").synchronous == "full"
        parsed = parse_store_url("sqlite:///demo/crm.db?synchronous=NORMAL")
        assert (parsed.target, parsed.synchronous) == ("demo/crm.db", "normal")
        with pytest.raises(BadStoreURL, match="synchronous"):
            parse_store_url("sqlite:///crm.db?synchronous=off")
        with pytest.raises(BadStoreURL, match="synchronous"):
            parse_store_url("sqlite:///crm.db?cache=shared")

"""NATS settings from the environment and one way to connect with them.

`CRM_NATS_URL` (comma-separated servers) and, for credentials, one of: `CRM_NATS_USER` +
`CRM_NATS_PASSWORD`, `CRM_NATS_TOKEN`, `CRM_NATS_NKEY_SEED` (a seed file), `CRM_NATS_CREDS` (a
.creds file with JWT and seed). TLS with `CRM_NATS_TLS_CA` (and `CRM_NATS_TLS_CERT` +
`CRM_NATS_TLS_KEY` for a client certificate); a `tls://` URL alone uses the system CAs.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nats
import structlog
from nats.aio.client import Client

from infra.errors import ConfigurationError, InfraError

log = structlog.get_logger("crm.nats")

DEFAULT_URL = "nats://127.0.0.1:4222"


class BusUnavailable(InfraError):
    """The NATS server cannot be reached (after the connect attempts)."""

    code = "bus_unavailable"


@dataclass(frozen=True)
class NatsSettings:
    servers: tuple[str, ...] = (DEFAULT_URL,)
    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkey_seed: str | None = None
    creds: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    name: str = "crm-engine"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, name: str = "crm-engine"
    ) -> NatsSettings:
        env = os.environ if env is None else env
        raw = env.get("CRM_NATS_URL") or DEFAULT_URL
        servers = tuple(s.strip() for s in raw.split(",") if s.strip())
        user, password = env.get("CRM_NATS_USER"), env.get("CRM_NATS_PASSWORD")
        if (user is None) != (password is None):
            raise ConfigurationError("set both CRM_NATS_USER and CRM_NATS_PASSWORD, or neither")
        ways = [
            w
            for w in (
                user,
                env.get("CRM_NATS_TOKEN"),
                env.get("CRM_NATS_NKEY_SEED"),
                env.get("CRM_NATS_CREDS"),
            )
            if w
        ]
        if len(ways) > 1:
            raise ConfigurationError(
                "give one kind of NATS credentials: user/password, CRM_NATS_TOKEN, "
                "CRM_NATS_NKEY_SEED or CRM_NATS_CREDS"
            )
        for key in (
            "CRM_NATS_NKEY_SEED",
            "CRM_NATS_CREDS",
            "CRM_NATS_TLS_CA",
            "CRM_NATS_TLS_CERT",
            "CRM_NATS_TLS_KEY",
        ):
            path = env.get(key)
            if path and not os.path.exists(path):
                raise ConfigurationError(f"{key}={path}: no such file")
        if bool(env.get("CRM_NATS_TLS_CERT")) != bool(env.get("CRM_NATS_TLS_KEY")):
            raise ConfigurationError("set both CRM_NATS_TLS_CERT and CRM_NATS_TLS_KEY, or neither")
        return cls(
            servers=servers,
            user=user,
            password=password,
            token=env.get("CRM_NATS_TOKEN") or None,
            nkey_seed=env.get("CRM_NATS_NKEY_SEED") or None,
            creds=env.get("CRM_NATS_CREDS") or None,
            tls_ca=env.get("CRM_NATS_TLS_CA") or None,
            tls_cert=env.get("CRM_NATS_TLS_CERT") or None,
            tls_key=env.get("CRM_NATS_TLS_KEY") or None,
            name=name,
        )

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `nats.connect` (credentials never logged)."""
        opts: dict[str, Any] = {"servers": list(self.servers), "name": self.name}
        if self.user is not None:
            opts["user"], opts["password"] = self.user, self.password
        if self.token:
            opts["token"] = self.token
        if self.nkey_seed:
            opts["nkeys_seed"] = self.nkey_seed
        if self.creds:
            opts["user_credentials"] = self.creds
        if self.tls_ca or self.tls_cert:
            context = ssl.create_default_context(cafile=self.tls_ca)
            if self.tls_cert and self.tls_key:
                context.load_cert_chain(self.tls_cert, self.tls_key)
            opts["tls"] = context
        return opts


async def connect(settings: NatsSettings, **extra: Any) -> Client:
    """A connected client that reconnects for ever; BusUnavailable if the first connect fails."""

    async def on_error(e: Exception) -> None:
        log.warning("nats.error", error=str(e), kind=type(e).__name__)

    async def on_disconnect() -> None:
        log.warning("nats.disconnected")

    async def on_reconnect() -> None:
        log.info("nats.reconnected")

    options = {
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 5,
        **settings.options(),
        **extra,
    }
    try:
        return await nats.connect(**options)
    except Exception as e:  # nats raises NoServersError, OSError, TimeoutError, ...
        raise BusUnavailable(f"cannot connect to NATS at {', '.join(settings.servers)}: {e}") from e

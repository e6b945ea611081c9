"""Per-customer encryption of personal data, and keyed hashes for unique contacts.

Each customer has a random 256-bit data key, stored wrapped (RFC 3394 AES key wrap) by the
master key from `CRM_MASTER_KEY`. Forgetting a customer deletes the wrapped key: the log is
never rewritten, its ciphertext simply can no longer be read. E-mail and phone uniqueness is
checked on an HMAC of the normalised value, never on plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Protocol
from uuid import UUID

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from domain.customers.contacts import normalise_contact
from infra.errors import ConfigurationError, InfraError

DEV_MASTER_KEY = hashlib.sha256(b"crm-engine development master key: never in production").digest()
"""The key the demo and tests use when CRM_MASTER_KEY is unset. Refused in production."""

NONCE_BYTES = 12


class KeyError_(InfraError):
    """Base of key-management errors (named with a trailing _ to not shadow KeyError)."""

    code = "key_error"


class InsecureMasterKey(ConfigurationError):
    """Production was asked to run without a real master key."""

    code = "insecure_master_key"


class WrongMasterKey(KeyError_):
    """CRM_MASTER_KEY is not the key this store's data keys were wrapped with."""

    code = "wrong_master_key"


class CustomerForgotten(KeyError_):
    """The customer's data key was deleted: nothing personal can be written for them again."""

    code = "customer_forgotten"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} was forgotten; their data key is deleted")
        self.customer_id = customer_id


class PersonalDataTampered(KeyError_):
    """Ciphertext failed authentication under an existing key: corrupt or tampered bytes."""

    code = "personal_data_tampered"


def load_master_key(env: Mapping[str, str]) -> bytes:
    """The master key from `CRM_MASTER_KEY` (base64 of 32 bytes), or the development default.

    `CRM_ENV=production` refuses both a missing key and the development default.
    """
    production = env.get("CRM_ENV", "development").strip().lower() == "production"
    raw = env.get("CRM_MASTER_KEY", "").strip()
    if not raw:
        if production:
            raise InsecureMasterKey(
                "CRM_ENV=production needs CRM_MASTER_KEY (base64 of 32 random bytes, e.g. "
                "`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`)"
            )
        return DEV_MASTER_KEY
    try:
        standard = raw.replace("-", "+").replace("_", "/")
        key = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigurationError(f"CRM_MASTER_KEY is not valid base64: {e}") from None
    if len(key) != 32:
        raise ConfigurationError(f"CRM_MASTER_KEY must decode to 32 bytes, got {len(key)}")
    if production and hmac.compare_digest(key, DEV_MASTER_KEY):
        raise InsecureMasterKey("CRM_ENV=production refuses the development master key")
    return key


def fingerprint(master_key: bytes) -> str:
    """A short public id of the master key, stored beside the keys to catch a wrong one early."""
    return hmac.new(master_key, b"crm-engine master key fingerprint", hashlib.sha256).hexdigest()[
        :16
    ]


def derive(master_key: bytes, purpose: bytes) -> bytes:
    """A 32-byte subkey of the master key for one purpose (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master_key)


class KeyVault(Protocol):
    """Where wrapped data keys live: a table beside the log (one module per backend)."""

    def master_fingerprint(self, fingerprint: str) -> str:
        """Record the fingerprint if none is stored yet; return the stored one."""
        ...

    def load_keys(self, customer_ids: Iterable[UUID]) -> dict[UUID, bytes | None]:
        """Wrapped keys by customer; None for a forgotten one; absent if never created."""
        ...

    def add_keys(self, wrapped: Mapping[UUID, bytes]) -> dict[UUID, bytes | None]:
        """Insert each key unless one is present; return what is stored (None if forgotten)."""
        ...

    def forget_key(self, customer_id: UUID) -> None:
        """Delete the key material for good, leaving a tombstone so it is never re-created."""
        ...


class KeyRing:
    """Data keys by customer, unwrapped on demand and cached until the customer is forgotten."""

    def __init__(self, vault: KeyVault, master_key: bytes, cache_size: int = 100_000) -> None:
        self._vault = vault
        self._master = master_key
        self._cache: dict[UUID, AESGCM | None] = {}
        # The same entries by the id's 16 bytes: a catch-up finds a sealed event's customer
        # in its stored bytes, and bytes hash in C where a UUID hashes in Python.
        self._raw: dict[bytes, AESGCM | None] = {}
        self._cache_size = cache_size
        # Reads of the cache take no lock; filling it does (an import decodes on one thread
        # while its writer thread encodes on another).
        self._lock = threading.RLock()
        stored = vault.master_fingerprint(fingerprint(master_key))
        if stored != fingerprint(master_key):
            raise WrongMasterKey(
                "CRM_MASTER_KEY does not match the master key this store was created with "
                f"(store has fingerprint {stored}, the key given has {fingerprint(master_key)})"
            )

    def cipher_for(self, customer_id: UUID) -> AESGCM:
        """The customer's cipher, creating their data key on first use."""
        cached = self._cache.get(customer_id, False)
        if cached is None:
            raise CustomerForgotten(customer_id)
        if cached is not False:
            return cached  # type: ignore[return-value]
        with self._lock:
            self.prepare([customer_id])
            cipher = self._cache.get(customer_id)
        if cipher is None:
            raise CustomerForgotten(customer_id)
        return cipher

    def prepare(self, customer_ids: Iterable[UUID]) -> None:
        """Load or create the keys of many customers at once (bulk appends, group commits):
        a fresh key is offered for each one not cached, and the vault keeps the one it
        already holds (`add_keys` inserts only where none is stored and answers what is).
        All cached (the common case) takes no lock: a bulk import's writer thread holds it
        while the vault write waits for the database, and its reader must not queue behind."""
        asked = [c for c in dict.fromkeys(customer_ids) if c not in self._cache]
        if not asked:
            return
        with self._lock:
            wanted = [c for c in asked if c not in self._cache]  # filled meanwhile?
            if not wanted:
                return
            fresh = os.urandom(32 * len(wanted))  # one call: see EventCodec.encode_many
            found = self._vault.add_keys(
                {
                    c: aes_key_wrap(self._master, fresh[32 * i : 32 * i + 32])
                    for i, c in enumerate(wanted)
                }
            )
            for customer_id in wanted:
                self._remember(customer_id, found.get(customer_id))

    def existing_cipher(self, customer_id: UUID) -> AESGCM | None:
        """The customer's cipher if their key exists; None when forgotten or never created."""
        cached = self._cache.get(customer_id, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        with self._lock:
            wrapped = self._vault.load_keys([customer_id]).get(customer_id)
            return self._remember(customer_id, wrapped)

    def existing_cipher_raw(self, raw: bytes) -> AESGCM | None:
        """`existing_cipher` of the customer whose id's 16 bytes are `raw`."""
        cached = self._raw.get(raw, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        return self.existing_cipher(UUID(bytes=raw))

    def preload_raw(self, raws: Iterable[bytes]) -> None:
        """`preload` of the customers whose ids' 16 bytes are `raws`."""
        known = self._raw
        asked = [UUID(bytes=r) for r in set(raws) if r not in known]
        if asked:
            self.preload(asked)

    def preload(self, customer_ids: Iterable[UUID]) -> None:
        """Load many keys in one query (catch-up decodes pages of many customers); all
        cached takes no lock (see `prepare`)."""
        asked = {c for c in customer_ids if c not in self._cache}
        if not asked:
            return
        with self._lock:
            missing = {c for c in asked if c not in self._cache}
            if not missing:
                return
            found = self._vault.load_keys(missing)
            for customer_id in missing:
                self._remember(customer_id, found.get(customer_id))

    def forget(self, customer_id: UUID) -> None:
        """Delete the customer's key in the vault and drop it from the cache."""
        with self._lock:
            self._vault.forget_key(customer_id)
            self._cache[customer_id] = None
            self._raw[customer_id.bytes] = None

    def evict(self, customer_id: UUID) -> None:
        """Drop a cached key so the next use asks the vault (another process forgot them)."""
        with self._lock:
            self._cache.pop(customer_id, None)
            self._raw.pop(customer_id.bytes, None)

    def _remember(self, customer_id: UUID, wrapped: bytes | None) -> AESGCM | None:
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
            self._raw.clear()
        if wrapped is None:
            self._cache[customer_id] = self._raw[customer_id.bytes] = None
            return None
        try:
            cipher = AESGCM(aes_key_unwrap(self._master, wrapped))
        except InvalidUnwrap:
            raise WrongMasterKey(
                f"the data key of customer {customer_id} does not unwrap with CRM_MASTER_KEY"
            ) from None
        self._cache[customer_id] = self._raw[customer_id.bytes] = cipher
        return cipher


class BlindIndex:
    """Keyed hashes (HMAC-SHA256) of contacts: equality lookups without storing plaintext."""

    def __init__(self, master_key: bytes) -> None:
        self._key = derive(master_key, b"crm-engine contact blind index")

    def digest(self, kind: str, value: str) -> bytes:
        message = f"{kind}:{normalise_contact(kind, value)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

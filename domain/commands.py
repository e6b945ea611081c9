"""The base of every command: a frozen msgspec Struct whose tag is its public name."""

from __future__ import annotations

import msgspec


class Command(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A request to change something. Its name (`customer.register`) is the NATS subject tail
    `crm.cmd.<name>` and the `command` of an import line."""

    @classmethod
    def command_name(cls) -> str:
        """Looked up once per class: msgspec builds `__struct_config__` anew on each access."""
        tag = _NAMES.get(cls)
        if tag is None:
            found = cls.__struct_config__.tag
            assert isinstance(found, str), f"{cls.__name__} has no tag"
            tag = _NAMES[cls] = found
        return tag


_NAMES: dict[type[Command], str] = {}

"""The root of infrastructure errors. Each adapter names its own errors below it."""


class InfraError(Exception):
    """Something outside the domain failed: storage, codec, keys, bus, configuration."""

    code = "infra_error"


class ConfigurationError(InfraError):
    """A setting is missing or wrong; the message says which one and how to fix it."""

    code = "configuration_error"

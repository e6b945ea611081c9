"""The customer registry: persons and organisations, their profile, contacts and consents."""

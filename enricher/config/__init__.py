"""Settings: frozen dataclasses from TOML, the environment and flags."""

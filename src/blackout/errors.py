"""Named errors. The CLI turns each into one line on stderr and exit code 2."""


class BlackoutError(Exception):
    """Base of every error caused by the user's input rather than by a bug."""


class ConfigError(BlackoutError):
    """A setting is unknown or has a value outside its domain."""


class DataError(BlackoutError):
    """A data file is missing, unreadable, corrupt or fails its checksum."""


class StoreError(BlackoutError):
    """A results store belongs to another study, has a newer schema, or cannot be opened."""

"""The service's own error."""


class ServiceError(RuntimeError):
    """The service cannot start as asked (unknown student, missing export, ...); the CLI prints it and exits 2."""

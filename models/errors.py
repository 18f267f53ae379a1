"""Errors raised for bad user input; their message is meant to be shown as one line."""


class ModelError(ValueError):
    """Base class: a request about a model that cannot be honoured."""


class UnknownModelError(ModelError):
    pass


class CheckpointError(ModelError):
    pass

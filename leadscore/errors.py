"""The one exception hierarchy of leadscore.

Every error a user can cause is a ``LeadscoreError``. Each class carries the HTTP status the
service answers with and a stable ``code`` that clients and tests can match on.
"""

from __future__ import annotations


class LeadscoreError(Exception):
    """Base class: a failure the user can fix, with a message saying how."""

    http_status = 400
    code = "leadscore_error"


class ConfigError(LeadscoreError):
    """A settings file, mapping file or policy file is invalid."""

    code = "invalid_config"


class InputFileError(LeadscoreError):
    """An input file cannot be read at all (missing, unknown format, undecodable)."""

    code = "unreadable_file"


class SchemaError(LeadscoreError):
    """A table lacks a required column or has a column of the wrong type."""

    code = "schema_mismatch"


class DataValidationError(LeadscoreError):
    """Values violate the canonical model (bad ids, unknown stages, naive timestamps)."""

    code = "invalid_data"
    http_status = 422


class InsufficientDataError(LeadscoreError):
    """Too little history to train a model that can be trusted."""

    code = "insufficient_data"
    http_status = 422


class ModelNotFoundError(LeadscoreError):
    """No registered model or alias matches the request."""

    code = "model_not_found"
    http_status = 503


class NotFoundError(LeadscoreError):
    """A lead, rep or assignment id does not exist."""

    code = "not_found"
    http_status = 404


class ConflictError(LeadscoreError):
    """The request conflicts with stored state (for example a duplicate rep id)."""

    code = "conflict"
    http_status = 409


class AuthError(LeadscoreError):
    """A bearer token is missing or wrong."""

    code = "unauthorized"
    http_status = 401


class PayloadTooLargeError(LeadscoreError):
    """A request body is over the configured size limit."""

    code = "payload_too_large"
    http_status = 413

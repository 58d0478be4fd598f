"""Bearer-token authentication for the scoring service.

The token comes from ``LEADSCORE_API_TOKEN`` (``Settings.api_token``) or from the first line
of a token file (``--token-file``, ``Settings.token_file``). Setting both is an error, so an
operator never has to guess which one is in force. Requests are checked with a constant-time
comparison, and the token itself is never logged.
"""

from __future__ import annotations

import enum
import hmac
import logging
import stat
from pathlib import Path

from pydantic import SecretStr

from leadscore.errors import AuthError, ConfigError
from leadscore.settings import Settings

logger = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
BEARER_SCHEME = "bearer"
_TOKEN_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def read_token_file(path: Path) -> SecretStr:
    """Read the bearer token from the first line of ``path``.

    Raises ConfigError when the file is missing, unreadable or has an empty first line. A file
    that other users can read is accepted with a warning.
    """
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"token file {path} not found; create it with a token on its first line") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"token file {path} cannot be read: {error}") from None
    first_line = text.splitlines()[0].strip() if text.strip() else ""
    if not first_line:
        raise ConfigError(f"token file {path} is empty; write the token on its first line")
    mode = Path(path).stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning("token file %s can be read by other users; restrict it with chmod 600", path)
    return SecretStr(first_line)


def resolve_api_token(settings: Settings) -> SecretStr | None:
    """Return the configured bearer token, or None when neither source is set.

    Raises ConfigError when both the environment token and a token file are set, or when the
    token is shorter than ``MIN_TOKEN_LENGTH`` characters.
    """
    if settings.api_token is not None and settings.token_file is not None:
        raise ConfigError(
            "both LEADSCORE_API_TOKEN and a token file are set; "
            "unset LEADSCORE_API_TOKEN or drop --token-file so that one token is in force"
        )
    token = settings.api_token
    if settings.token_file is not None:
        token = read_token_file(settings.token_file)
    if token is None:
        return None
    length = len(token.get_secret_value())
    if length < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the API token has {length} characters; use at least {MIN_TOKEN_LENGTH}, "
            f"for example the output of {_TOKEN_HINT}"
        )
    return token


def require_token_or_insecure(token: SecretStr | None, *, insecure: bool) -> None:
    """Raise ConfigError when no token is configured and insecure mode was not requested."""
    if token is None and not insecure:
        raise ConfigError(
            "no API token configured; set LEADSCORE_API_TOKEN or pass --token-file FILE "
            "(or --insecure to serve without authentication on a trusted machine)"
        )


class AuthProblem(enum.Enum):
    """Reason a request failed authentication; the value names its message (``http.auth_<value>``)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    INVALID = "invalid"


_PROBLEM_TEXTS: dict[AuthProblem, str] = {
    AuthProblem.MISSING: "missing bearer token; send the header 'Authorization: Bearer <token>'",
    AuthProblem.MALFORMED: "the Authorization header must have the form 'Bearer <token>'",
    AuthProblem.INVALID: (
        "invalid bearer token; send the token the service was started with "
        "(LEADSCORE_API_TOKEN or --token-file)"
    ),
}


class BearerTokenVerifier:
    """Check ``Authorization: Bearer <token>`` headers against one configured token."""

    def __init__(self, token: SecretStr) -> None:
        self._expected = token.get_secret_value().encode("utf-8")

    def check(self, authorization: str | None) -> AuthProblem | None:
        """Return None when ``authorization`` carries the configured token, else the problem."""
        if not authorization:
            return AuthProblem.MISSING
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != BEARER_SCHEME or not credentials.strip():
            return AuthProblem.MALFORMED
        # compare_digest takes the same time wherever the first differing byte is.
        if not hmac.compare_digest(credentials.strip().encode("utf-8"), self._expected):
            return AuthProblem.INVALID
        return None

    def verify(self, authorization: str | None) -> None:
        """Raise AuthError unless ``authorization`` carries the configured bearer token."""
        problem = self.check(authorization)
        if problem is not None:
            raise AuthError(_PROBLEM_TEXTS[problem])

"""Per-site bearer tokens for uploads: ``Authorization: Bearer <the site's token>``.

Tokens are resolved once, when the app is built (:meth:`SiteTokens.from_config`), and
compared in constant time (``hmac.compare_digest``) against every site's token, so the
time taken does not tell which site, or how much of a token, matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.config import Config, ConfigError, StatusPageMode

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="SiteToken",
    description="The uploading site's token (sites.<id>.token or token_env in the config).",
)


@dataclass(frozen=True, slots=True)
class SiteTokens:
    """Each site's upload token, as bytes, by site id."""

    by_site: Mapping[str, bytes]

    @classmethod
    def from_config(cls, config: Config) -> SiteTokens:
        """Resolve every site's token (``token`` or the ``token_env`` variable).

        Raises ConfigError naming each site whose ``token_env`` variable is unset, and each
        pair of sites sharing a token (a token must identify one site).
        """
        tokens: dict[str, bytes] = {}
        problems: list[str] = []
        for site_id, site in config.sites.items():
            try:
                tokens[site_id] = site.resolve_token().encode()
            except ConfigError as exc:
                problems.extend(f"sites.{site_id}: {message}" for message in exc.messages)
        owner: dict[bytes, str] = {}
        for site_id, token in tokens.items():
            if token in owner:
                problems.append(
                    f"sites.{site_id}: has the same upload token as sites.{owner[token]}; "
                    "give each site its own token"
                )
            owner.setdefault(token, site_id)
        if problems:
            raise ConfigError(problems)
        return cls(by_site=tokens)

    def site_for(self, token: str) -> str | None:
        """Return the site whose token is ``token``; ``None`` if none is.

        Every site's token is compared (no early exit), each in constant time.
        """
        given = token.encode()
        found: str | None = None
        for site_id, expected in self.by_site.items():
            if hmac.compare_digest(given, expected):
                found = site_id
        return found


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": challenge},
    )


def authenticated_site(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Return the id of the site whose token the request bears.

    Raises HTTPException 401 (with ``WWW-Authenticate: Bearer``) when the header is missing,
    is not a bearer token, or the token is no site's.
    """
    if credentials is None:
        raise _unauthorized(
            "Send the site's upload token in the header 'Authorization: Bearer <token>'."
        )
    tokens: SiteTokens = request.app.state.site_tokens
    site_id = tokens.site_for(credentials.credentials)
    if site_id is None:
        raise _unauthorized(
            "The upload token is not that of any configured site; check the agent's token.",
            error="invalid_token",
        )
    return site_id


AuthenticatedSite = Annotated[str, Depends(authenticated_site)]


def require_reader(request: Request) -> None:
    """Let a request read data unless the service runs in private mode and it may not.

    In ``server.status_page: private`` mode the JSON API, the export and ``/metrics`` need
    what the pages need: a logged-in status-page session (any role), or the operator token
    (``server.admin_token``) as ``Authorization: Bearer`` — which is how Prometheus scrapes
    a private Linkwatch (``authorization: {credentials: ...}`` in its scrape config).

    Raises:
        HTTPException: 401 with ``WWW-Authenticate: Bearer`` and one sentence.
    """
    from api.status.access import visitor

    services = request.app.state.services
    if services.config.server.status_page != StatusPageMode.PRIVATE:
        return
    admin = services.config.server.resolve_admin_token()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if admin and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), admin):
        return
    if visitor(request, services).user is not None:
        return
    raise HTTPException(
        status_code=401,
        detail="This Linkwatch runs in private mode: log in on the status page, or send the "
        "operator token as a Bearer token.",
        headers={"WWW-Authenticate": "Bearer"},
    )


_operator_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="OperatorToken",
    description="The operator token (server.admin_token or admin_token_env in the config).",
)


def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_operator_bearer)],
) -> None:
    """Let a request change things only with the operator token (compared in constant time).

    Raises:
        HTTPException: 403 when no operator token is configured (the operator API is off;
            the CLI still works), 401 with ``WWW-Authenticate: Bearer`` when the request
            carries none or another one.
    """
    expected = request.app.state.services.config.server.resolve_admin_token()
    if expected is None:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="The operator API is off: set server.admin_token_env in the configuration "
            "(or use the linkwatch command on the server).",
        )
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Send the operator token in the header 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )

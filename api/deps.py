"""FastAPI dependencies: the app's services and database sessions, read from ``app.state``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.services import Services
from monitor.storage.db import read_only


def get_services(request: Request) -> Services:
    """Return the services the app factory stored in ``app.state.services``."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_read_session(services: ServicesDep) -> Iterator[Session]:
    """Yield a session for reads only, closed (and rolled back) after the request.

    On SQLite its transaction takes no write lock, so reads run beside ingestion.
    """
    with services.sessions(bind=read_only(services.engine)) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]

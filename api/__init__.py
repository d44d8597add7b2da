"""The central service's HTTP surface: FastAPI app factory, routes, metrics, status page."""

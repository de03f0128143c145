"""The web console: lists, forms and live job pages over the same service as the API."""

from batchform.console.routes import console_routes

__all__ = ["console_routes"]

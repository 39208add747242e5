"""The ASGI composition root (create_app, lifespan, middleware) and the microsite handlers."""

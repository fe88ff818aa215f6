"""The HTTP service: a thin FastAPI layer over personalize (see serving.app.create_app)."""

"""The API's route handlers: features (the product) and ops (health, readiness, metrics)."""

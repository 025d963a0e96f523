"""The StreamFlow features API (Litestar) and the online store it reads."""

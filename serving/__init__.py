"""The StreamFlow features API (Litestar), reading the online store through the `streamflow` library."""

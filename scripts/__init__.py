"""The commands people run (`python -m scripts.<command>`): each parses its arguments and calls
the library, `streamflow`."""

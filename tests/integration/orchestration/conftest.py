"""The browser fixtures of tests/browser/, for the Prefect UI's page of a flow run."""

from tests.browser.chromium import browser, watched  # noqa: F401 - fixtures, by name

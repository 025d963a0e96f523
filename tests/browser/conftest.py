"""The browser fixtures (tests/browser/chromium.py), for every test here."""

from tests.browser.chromium import browser, watched  # noqa: F401 - fixtures, by name

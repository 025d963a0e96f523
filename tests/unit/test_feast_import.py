"""Feast imported for reading (streamflow/features/feast_import.py): its definitions' methods not
instrumented by typeguard, typeguard as it was for everything else, apply's Feast still checked."""

import subprocess
import sys
import textwrap


def run(*code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "".join(textwrap.dedent(c) for c in code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


INSTRUMENTED = """
    import feast
    names = feast.FeatureView.__init__.__code__.co_names
    print(any(n.startswith("check_argument_types") for n in names))
"""


def test_feast_for_reading_is_not_instrumented_and_typeguard_is_restored():
    out = run(
        """
        import typeguard
        from streamflow.features.feast_import import import_for_reading
        original = typeguard.typechecked
        print(import_for_reading(), import_for_reading(), typeguard.typechecked is original)
        """,
        INSTRUMENTED,
    )
    assert out.splitlines() == ["True False True", "False"]


def test_feast_imported_as_it_is_keeps_its_checks():
    """What `feast apply` imports: a feature repository's definitions are checked."""
    assert run(INSTRUMENTED) == "True"


def test_the_reading_commands_import_feast_unchecked_and_apply_does_not():
    out = run(
        """
        from streamflow.cli import all_commands
        print(sorted(c.name for c in all_commands() if getattr(c.run, "__wrapped__", None)))
        """
    )
    assert out == str(sorted(["check-skew", "materialize", "monitor", "report", "training-set"]))


def test_the_api_imports_feast_unchecked_and_its_metrics_mode_first():
    """Any import of the API's package (`python -m serving`, a uvicorn worker loading the app)."""
    out = run(
        """
        import sys
        import serving.app
        print(list(sys.modules).index("serving.metrics") < list(sys.modules).index("feast"))
        """,
        INSTRUMENTED,
    )
    assert out.splitlines() == ["True", "False"]

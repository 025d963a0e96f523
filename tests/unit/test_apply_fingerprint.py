"""What makes an apply "the same as the last" (streamflow/features/repo_fingerprint.py): the
repository's files and the configuration, never a credential."""

import shutil

import pytest

from streamflow import config
from streamflow.features import repo_fingerprint as apply

URL = "postgresql://owner:{password}@db.example:5432/{database}?sslmode=require"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    copy = tmp_path / "feature_repo"
    shutil.copytree(apply.REPO_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(apply, "REPO_DIR", copy)
    return copy


def fingerprint(password: str = "first", database: str = "streamflow", **settings: str) -> str:  # noqa: S107
    values = {config.DATABASE_URL: URL.format(password=password, database=database), **settings}
    with config.overridden(values):
        return apply.fingerprint()


def test_a_password_is_not_part_of_it(repo):
    assert fingerprint("first") == fingerprint("second") == fingerprint("first")
    same = fingerprint(**{config.READER_PASSWORD: "one", config.API_TOKEN: "a"})
    assert same == fingerprint(**{config.READER_PASSWORD: "two", config.API_TOKEN: "b"})


def test_another_database_or_store_setting_is_another_apply(repo):
    assert fingerprint(database="other") != fingerprint()
    assert fingerprint(**{config.LAKE_DIR: "/elsewhere"}) != fingerprint()
    assert fingerprint(**{config.REDIS_CLUSTER: "1"}) != fingerprint()


def test_settings_the_registry_does_not_see_are_the_same_apply(repo):
    """`make pipeline` (SEEDS_DIR set) then `make apply` (not): nothing to apply the second time."""
    others = {config.SEEDS_DIR: "/seeds", config.LOG_FORMAT: "json", config.PORT: "9000"}
    assert fingerprint(**others) == fingerprint()


def test_a_changed_repository_file_is_another_apply(repo):
    before = fingerprint()
    views = repo / "feature_views.py"
    views.write_text(views.read_text() + "\n# a comment changes the file\n")
    assert fingerprint() != before
    (repo / "extra.py").write_text("")
    assert len({before, fingerprint()}) == 2


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("postgresql://u:password%40x@h:5/db?sslmode=disable", "postgresql://u@h:5/db?sslmode=disable"),
        ("redis://:password-x@h:6379/0", "redis://@h:6379/0"),
        ("host=h password='a b\\' c' dbname=x", "host=h password= dbname=x"),
        ("postgresql://h/db?password=xx&sslmode=require", "postgresql://h/db?password=&sslmode=require"),
        ('{"redis_url": "rediss://u:password2@h:1"}', '{"redis_url": "rediss://u@h:1"}'),
    ],
)
def test_credentials_are_left_out_of_settings(text, kept):
    assert apply.without_credentials(text) == kept

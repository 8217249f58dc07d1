"""Settings from the environment: defaults, parsing, errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from abconv.config import load_config
from abconv.errors import AbconvError


def test_defaults_are_sqlite_in_the_instance_folder_and_the_examples() -> None:
    settings = load_config({})
    assert settings.database_url == f"sqlite:///{Path('instance').resolve() / 'abconv.sqlite3'}"
    assert settings.experiments_dir == Path("experiments")
    assert settings.admin_password is None and settings.allowed_origins == ()
    assert settings.instance_dir == Path("instance") and settings.trusted_proxies == 0
    assert settings.secret_key is None  # generated in the instance folder when first needed


def test_every_variable_is_read() -> None:
    settings = load_config({
        "ABCONV_DATABASE_URL": "postgresql://u@db/abconv",
        "ABCONV_EXPERIMENTS_DIR": "/srv/experiments",
        "ABCONV_SECRET_KEY": "s3cret",
        "ABCONV_ADMIN_PASSWORD": "12345",
        "ABCONV_ALLOWED_ORIGINS": "https://a.example, https://b.example/",
        "ABCONV_INSTANCE_DIR": "/srv/abconv",
        "ABCONV_TRUSTED_PROXIES": "2",
    })  # fmt: skip
    assert settings.database_url == "postgresql://u@db/abconv"
    assert settings.experiments_dir == Path("/srv/experiments")
    assert settings.secret_key == "s3cret"
    assert settings.admin_password == "12345"  # a string, never JSON-decoded to an int
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.instance_dir == Path("/srv/abconv") and settings.trusted_proxies == 2


def test_the_default_database_lives_in_the_instance_folder() -> None:
    settings = load_config({"ABCONV_INSTANCE_DIR": "/srv/abconv"})
    assert settings.database_url == "sqlite:////srv/abconv/abconv.sqlite3"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ABCONV_DATABASE_URL", "mysql://x/y"),
        ("ABCONV_ALLOWED_ORIGINS", "shop.example.com"),
        ("ABCONV_TRUSTED_PROXIES", "yes"),
        ("ABCONV_TRUSTED_PROXIES", "-1"),
        ("ABCONV_TRUSTED_PROXIES", "10.0.0.1"),
        ("ABCONV_TRUSTED_PROXIES", "99"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(name: str, value: str) -> None:
    with pytest.raises(AbconvError) as raised:
        load_config({name: value})
    assert name in raised.value.message and value in raised.value.message

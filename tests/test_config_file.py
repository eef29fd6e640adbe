"""Issue 11: udun.toml beside the UDUN_* variables (the environment wins), refused clearly
when it is wrong: unknown key, wrong type, invalid TOML, missing file, secrets in it."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from config import tomlfile
from config.settings import load_settings
from helpers import udun
from pkicore.errors import ErrorKind, PkiError


def _file(tmp_path: Path, text: str, name: str = "udun.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(env: dict[str, str], *fragments: str) -> str:
    with pytest.raises(PkiError) as info:
        load_settings(env)
    assert info.value.kind is ErrorKind.BAD_INPUT
    for fragment in fragments:
        assert fragment in info.value.message, (fragment, info.value.message)
    return info.value.message


def test_values_from_the_file_are_used(tmp_path: Path) -> None:
    home = tmp_path / "home"
    conf = _file(tmp_path, f'''
home = "{home}"
database_url = "postgresql+psycopg://udun@db.example.com:5432/udun"
base_url = "https://pki.example.com/"
client_days = 365
require_challenge = true
log_file = "logs/udun.log"          # relative: beside this file
log_level = "warning"
ca_token_serial = "a1b2c3d4e5f60708"
online_token = "bank-online"
tsa_policy = "1.3.6.1.4.1.99999.7"
trust_file = "/etc/udun/anchors.pem"
tls_cert = "tls/server.pem"
tls_key = "tls/server.key"
tls_client_ca = "tls/banks.pem"
tls_client_auth = "required"
gunicorn_config = "gunicorn.conf.py"
''')
    s = load_settings({"UDUN_CONFIG": str(conf)})
    assert s.home == home.resolve()
    assert s.database_url == "postgresql+psycopg://udun@db.example.com:5432/udun"
    assert s.base_url == "https://pki.example.com"
    assert (s.client_days, s.require_challenge, s.log_level) == (365, True, "WARNING")
    assert s.log_file == str(tmp_path / "logs" / "udun.log")
    assert (s.ca_token_serial, s.online_token, s.tsa_policy) == ("a1b2c3d4e5f60708", "bank-online",
                                                                 "1.3.6.1.4.1.99999.7")
    assert s.trust_file == Path("/etc/udun/anchors.pem")
    assert (s.tls_cert, s.tls_key, s.tls_client_ca) == (tmp_path / "tls/server.pem", tmp_path / "tls/server.key",
                                                        tmp_path / "tls/banks.pem")
    assert s.tls and s.tls_client_auth == "required"
    assert s.gunicorn_config == tmp_path / "gunicorn.conf.py"
    assert s.config_file == conf


def test_the_file_in_udun_home_is_read_without_udun_config(tmp_path: Path) -> None:
    _file(tmp_path, 'client_days = 30\nlog_level = "DEBUG"\n')
    s = load_settings({"UDUN_HOME": str(tmp_path)})
    assert (s.client_days, s.log_level, s.config_file) == (30, "DEBUG", tmp_path / "udun.toml")
    # no file: the defaults, and config_file says so
    other = tmp_path / "other"
    other.mkdir()
    assert load_settings({"UDUN_HOME": str(other)}).config_file is None


def test_the_environment_wins(tmp_path: Path) -> None:
    conf = _file(tmp_path, 'client_days = 30\nbase_url = "http://file.example.com"\nlog_level = "ERROR"\n')
    s = load_settings({"UDUN_CONFIG": str(conf), "UDUN_HOME": str(tmp_path / "h"), "UDUN_CLIENT_DAYS": "10",
                       "UDUN_BASE_URL": "http://env.example.com", "UDUN_LOG_LEVEL": ""})
    assert s.client_days == 10 and s.base_url == "http://env.example.com"
    assert s.log_level == "ERROR"            # an empty variable is unset: the file's value
    assert s.home == (tmp_path / "h").resolve()


def test_home_comes_from_the_environment_over_the_named_file(tmp_path: Path) -> None:
    conf = _file(tmp_path, f'home = "{tmp_path / "from-file"}"\n')
    assert load_settings({"UDUN_CONFIG": str(conf)}).home == (tmp_path / "from-file").resolve()
    assert load_settings({"UDUN_CONFIG": str(conf), "UDUN_HOME": str(tmp_path / "env")}).home == \
        (tmp_path / "env").resolve()


def test_home_cannot_be_moved_by_the_file_inside_it(tmp_path: Path) -> None:
    conf = _file(tmp_path, f'home = "{tmp_path / "elsewhere"}"\n')
    _refused({"UDUN_HOME": str(tmp_path)}, str(conf), "home cannot be set", "UDUN_CONFIG")


def test_an_unknown_key_is_refused_with_its_name(tmp_path: Path) -> None:
    conf = _file(tmp_path, 'databse_url = "sqlite:///x.db"\n')
    _refused({"UDUN_CONFIG": str(conf)}, str(conf), "'databse_url'", "did you mean database_url")
    conf = _file(tmp_path, 'colour = "blue"\n')
    _refused({"UDUN_CONFIG": str(conf)}, "'colour'", "lower case without UDUN_")


def test_tables_are_refused(tmp_path: Path) -> None:
    conf = _file(tmp_path, '[tls]\ncert = "server.pem"\n')
    _refused({"UDUN_CONFIG": str(conf)}, str(conf), "[tls]", "top level")


@pytest.mark.parametrize("line, fragment", [
    ('client_days = "30"', "client_days must be an integer, not a string (UDUN_CLIENT_DAYS)"),
    ("client_days = true", "client_days must be an integer, not a boolean"),
    ("client_days = 3.5", "client_days must be an integer, not a float"),
    ("require_challenge = 1", "require_challenge must be true or false, not an integer"),
    ('require_challenge = "yes"', "require_challenge must be true or false, not a string"),
    ("base_url = 8080", "base_url must be a string, not an integer"),
    ("tls_cert = ['a.pem']", "tls_cert must be a string (a file path), not an array"),
    ("log_file = 2026-01-01", "log_file must be a string (a file path), not a date or time"),
])
def test_a_wrong_type_is_refused_with_its_key(tmp_path: Path, line: str, fragment: str) -> None:
    conf = _file(tmp_path, line + "\n")
    _refused({"UDUN_CONFIG": str(conf)}, str(conf), fragment)


def test_a_bad_value_from_the_file_names_the_file_key(tmp_path: Path) -> None:
    conf = _file(tmp_path, "client_days = 99999\n")
    _refused({"UDUN_CONFIG": str(conf)}, f"client_days in {conf} must be a whole number from 1 to 3650")
    conf = _file(tmp_path, 'base_url = "ftp://pki.example.com"\n')
    _refused({"UDUN_CONFIG": str(conf)}, f"base_url in {conf} must be an http://")
    conf = _file(tmp_path, 'log_level = "LOUD"\n')
    _refused({"UDUN_CONFIG": str(conf)}, f"log_level in {conf} must be DEBUG")
    # the same value from the environment names the variable, as before
    _refused({"UDUN_CONFIG": str(conf), "UDUN_CLIENT_DAYS": "0", "UDUN_LOG_LEVEL": "INFO"},
             "UDUN_CLIENT_DAYS must be a whole number")


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    conf = _file(tmp_path, 'client_days = 30\nbase_url = "http://unterminated\n')
    message = _refused({"UDUN_CONFIG": str(conf)}, str(conf), "not valid TOML")
    assert re.search(r"line 2", message), message
    conf = _file(tmp_path, "client_days = 30\nclient_days = 31\n")    # TOML forbids a repeated key
    _refused({"UDUN_CONFIG": str(conf)}, "not valid TOML")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('log_file = "caf\xe9"\n'.encode("latin-1"))
    _refused({"UDUN_CONFIG": str(bad)}, str(bad), "not valid TOML")


def test_udun_config_pointing_nowhere_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "udun.toml"
    _refused({"UDUN_CONFIG": str(missing)}, f"UDUN_CONFIG names {missing}, which does not exist")
    _refused({"UDUN_CONFIG": str(tmp_path)}, str(tmp_path), "is a directory")
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "udun.toml").symlink_to(tmp_path / "gone.toml")     # a dangling link is no "no file"
    _refused({"UDUN_HOME": str(tmp_path / "h")}, "cannot be read")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a 0000 file")
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    conf = _file(tmp_path, "client_days = 30\n")
    conf.chmod(0)
    _refused({"UDUN_CONFIG": str(conf)}, str(conf), "cannot be read")


def test_a_world_writable_file_is_refused(tmp_path: Path) -> None:
    conf = _file(tmp_path, "client_days = 30\n")
    conf.chmod(0o666)
    _refused({"UDUN_CONFIG": str(conf)}, str(conf), "writable by every user", "0666")


@pytest.mark.parametrize("line, where", [
    ('ca_pin = "123456"', "UDUN_CA_PIN or $UDUN_HOME/secrets/ca.pin"),
    ('online_pin = "123456"', "UDUN_ONLINE_PIN"),
    ('so_pin = "12345678"', "UDUN_SO_PIN"),
    ('pin = "1234"', "UDUN_PIN"),
    ('admin_api_key = "k"', "UDUN_ADMIN_API_KEY in the environment"),
])
def test_secrets_are_refused(tmp_path: Path, line: str, where: str) -> None:
    conf = _file(tmp_path, line + "\n")
    message = _refused({"UDUN_CONFIG": str(conf)}, str(conf), "is a secret", where)
    assert '"' + line.split('"')[1] + '"' not in message      # the value is never echoed


def test_a_database_password_in_the_file_is_refused(tmp_path: Path) -> None:
    conf = _file(tmp_path, 'database_url = "postgresql+psycopg://udun:s3cret@db:5432/udun"\n')
    message = _refused({"UDUN_CONFIG": str(conf)}, "database_url carries a password", "UDUN_DATABASE_URL",
                       "passfile")
    assert "s3cret" not in message
    # the same URL in the environment is fine (an EnvironmentFile of mode 0600)
    ok = _file(tmp_path, "client_days = 30\n", "ok.toml")
    url = "postgresql+psycopg://udun:s3cret@db:5432/udun"
    assert load_settings({"UDUN_CONFIG": str(ok), "UDUN_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize("env, fragments", [
    ({"UDUN_TLS_CERT": "/x/server.pem"}, ("UDUN_TLS_CERT and UDUN_TLS_KEY go together",)),
    ({"UDUN_TLS_KEY": "/x/server.key"}, ("go together",)),
    ({"UDUN_TLS_CERT": "/x/c", "UDUN_TLS_KEY": "/x/k", "UDUN_TLS_CLIENT_AUTH": "required"},
     ("UDUN_TLS_CLIENT_AUTH=required needs UDUN_TLS_CLIENT_CA",)),
    ({"UDUN_TLS_CERT": "/x/c", "UDUN_TLS_KEY": "/x/k", "UDUN_TLS_CLIENT_CA": "/x/ca"},
     ("UDUN_TLS_CLIENT_CA is set but UDUN_TLS_CLIENT_AUTH is none",)),
    ({"UDUN_TLS_CLIENT_CA": "/x/ca", "UDUN_TLS_CLIENT_AUTH": "optional"}, ("needs TLS",)),
    ({"UDUN_TLS_CERT": "/x/c", "UDUN_TLS_KEY": "/x/k", "UDUN_TLS_CLIENT_AUTH": "mandatory"},
     ("UDUN_TLS_CLIENT_AUTH must be none, optional or required",)),
])
def test_tls_settings_that_do_not_fit_together(tmp_path: Path, env: dict[str, str],
                                               fragments: tuple[str, ...]) -> None:
    _refused({"UDUN_HOME": str(tmp_path), **env}, *fragments)


def test_tls_settings_from_the_file_are_named_by_key(tmp_path: Path) -> None:
    conf = _file(tmp_path, 'tls_cert = "server.pem"\n')
    _refused({"UDUN_CONFIG": str(conf)}, f"tls_cert in {conf} and UDUN_TLS_KEY go together")


def test_every_setting_has_a_key_and_every_key_a_setting() -> None:
    """The file's keys are the variables load_settings reads, one to one."""
    source = (Path(__file__).parents[1] / "config" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r'"(UDUN_[A-Z0-9_]+)"', source)) - {"UDUN_CONFIG"}
    keys = {tomlfile.variable_of(k) for k in tomlfile.KEYS}
    assert read == keys
    assert not set(tomlfile.SECRETS) & set(tomlfile.KEYS)


def test_the_cli_reports_a_bad_file_in_one_line(tmp_path: Path) -> None:
    conf = _file(tmp_path, 'ca_tokn = "x"\n')
    proc = udun("ca", "list", env={"UDUN_CONFIG": str(conf)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.decode().strip() == \
        f"udun: error [bad-input]: configuration file {conf}: unknown key 'ca_tokn' (did you mean ca_token?)"


def test_the_example_file_is_valid(tmp_path: Path) -> None:
    """deploy/udun.toml.example, as shipped, loads (its paths need not exist to load)."""
    example = Path(__file__).parents[1] / "deploy" / "udun.toml.example"
    s = load_settings({"UDUN_CONFIG": str(example), "UDUN_HOME": str(tmp_path)})
    assert s.config_file == example.absolute()

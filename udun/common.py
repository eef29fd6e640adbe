"""What every CLI command shares: settings, PIN prompts, output, error handling."""
from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NoReturn, TypeVar

import click

from config.settings import Settings, load_settings
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import pem_certs  # noqa: F401  (the CLI modules' PEM writer)

EXIT_ERROR = 2


def settings() -> Settings:
    return load_settings()


def secret(env: str, prompt: str, confirm: bool = False) -> str:
    """A PIN from the environment (scripts) or a prompt without echo; never logged."""
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise PkiError(ErrorKind.BAD_INPUT, f"no {prompt}: set {env} or run in a terminal")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def user_pin() -> str:
    return secret("UDUN_PIN", "PIN")


def so_pin() -> str:
    return secret("UDUN_SO_PIN", "SO PIN", confirm=True)


def read_input(path: str, what: str) -> bytes:
    """Read a file named on the command line ('-' is stdin), with a clear error."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"cannot read {what} {path}: {e.strerror}") from e


def write_output(path: str | None, data: bytes) -> None:
    """Write to a file, or stdout when no path is given."""
    if path is None or path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"cannot write {path}: {e.strerror}") from e


def fail(e: PkiError) -> NoReturn:
    click.echo(f"udun: error [{e.kind.value}]: {e.message}", err=True)
    sys.exit(EXIT_ERROR)


def info(message: str) -> None:
    """Progress for people goes to stderr, so stdout stays clean for data."""
    click.echo(message, err=True)


def parse_time(text: str, option: str) -> datetime:
    """An RFC 3339 time with a zone (Z or an offset), as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PkiError(ErrorKind.BAD_INPUT, f"{option} takes an RFC 3339 time with a zone, e.g. 2026-11-22T08:00:00Z")
    return moment.astimezone(timezone.utc)


T = TypeVar("T")


def hand_out_secret(make: Callable[[], T], text_of: Callable[[T], tuple[str, str]],
                    revoke: Callable[[str], object], out: str | None, shown: Callable[[T], None]) -> T:
    """Make a credential (``text_of``: its id and text) and show its text once: on stdout,
    or in a new file only its owner reads. The file is created first (never over an
    existing one): a credential is never made that could not be handed out; one whose text
    could not be written is revoked."""
    import contextlib

    fd = None
    if out:
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise PkiError(ErrorKind.BAD_INPUT, f"cannot create {out}: {e.strerror}") from e
    try:
        new = make()
    except BaseException:
        if fd is not None:
            os.close(fd)
            os.unlink(out)  # type: ignore[arg-type]
        raise
    ident, text = text_of(new)
    try:
        if fd is not None:
            with os.fdopen(fd, "w") as f:
                f.write(text + "\n")
            info(f"{ident} written to {out} (0600)")
        else:
            click.echo(text)
    except OSError as e:
        # Nobody holds the text: it must not stay usable, nor a half-written file.
        revoke(ident)
        if out:
            with contextlib.suppress(OSError):
                os.unlink(out)
        raise PkiError(ErrorKind.BAD_INPUT, f"could not hand out {ident} ({e.strerror}); it was revoked") from e
    shown(new)
    return new

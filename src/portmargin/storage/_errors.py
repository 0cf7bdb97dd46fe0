"""Database faults as one-line :class:`~portmargin.errors.StorageError` messages.

Each message says what failed, where (the URL with its password masked) and what to do.
Faults are recognised by the driver's message or error class: SQLite's result-code texts
(``SQLITE_FULL`` is "database or disk is full", ``SQLITE_NOTADB`` "file is not a database",
``SQLITE_READONLY`` "attempt to write a readonly database"; https://www.sqlite.org/rescode.html)
and PostgreSQL's SQLSTATE classes (``53`` insufficient resources, ``08`` connection
exception; https://www.postgresql.org/docs/current/errcodes-appendix.html).
"""

from __future__ import annotations

import errno
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.util import CommandError
from sqlalchemy import URL, make_url
from sqlalchemy import exc as sa_exc

from portmargin.errors import StorageError

__all__ = ["DB_ERRORS", "describe_url", "guard", "storage_error"]

# What the store translates. SQLAlchemy's other errors (misuse of its API) are bugs and
# keep their traceback.
DB_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.DBAPIError,
    sa_exc.ArgumentError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    sqlite3.Error,
    OSError,
    CommandError,
)

URL_HELP = "use sqlite:///PATH/TO/FILE.db or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
_USERINFO = re.compile(r"(?<=://)([^:/@\s]*):[^@/\s]*@")


def _parsed(url: str | URL) -> URL | None:
    if isinstance(url, URL):
        return url
    try:
        return make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        return None


def describe_url(url: str | URL) -> str:
    """``url`` as shown in messages: the password replaced by ``***``."""
    parsed = _parsed(url)
    if parsed is not None and parsed.password is not None:
        return parsed.render_as_string(hide_password=True)
    return _USERINFO.sub(r"\1:***@", str(url) if isinstance(url, str) else repr(url))


def _mask(text: str, url: str | URL) -> str:
    parsed = _parsed(url)
    password = parsed.password if parsed is not None else None
    if password:
        text = text.replace(str(password), "***")
    return _USERINFO.sub(r"\1:***@", text)


def _reason(exc: BaseException) -> str:
    """The driver's own message, first line only (SQLAlchemy's SQL echo and links dropped)."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
    source: BaseException = orig if isinstance(orig, BaseException) else exc
    text = source.strerror if isinstance(source, OSError) and source.strerror else str(source)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("(Background on this error"):
            return line.rstrip(".")
    return type(source).__name__


def _sqlstate(exc: BaseException) -> str:
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else ""


def storage_error(exc: BaseException, url: str | URL, action: str) -> StorageError:
    """A one-line :class:`StorageError` for ``exc``, raised while ``action`` on ``url``.

    Parameters
    ----------
    exc
        The SQLAlchemy, driver, Alembic or operating-system error.
    url
        The database URL (its password never appears in the message).
    action
        What was being done, as a gerund phrase: ``"committing input event 12 of feed 'f'"``.
    """
    where = describe_url(url)
    reason = _mask(_reason(exc), url)
    low = reason.lower()
    state = _sqlstate(exc)
    os_errno = exc.errno if isinstance(exc, OSError) else None
    if isinstance(exc, ImportError):
        kind = where.split(":", 1)[0]
        msg = (
            f"database URL {where!r}: the driver for {kind!r} is not installed ({reason}); "
            f"portmargin stores its state in SQLite or PostgreSQL: {URL_HELP}"
        )
    elif isinstance(exc, sa_exc.NoSuchModuleError):
        kind = where.split(":", 1)[0]
        msg = f"database URL {where!r}: unknown database kind {kind!r}; {URL_HELP}"
    elif isinstance(exc, sa_exc.ArgumentError):
        msg = f"database URL {where!r} cannot be parsed ({reason}); {URL_HELP}"
    elif "disk is full" in low or state.startswith("53") or os_errno == errno.ENOSPC:
        msg = (
            f"database {where}: the disk is full ({reason}) while {action}; that transaction was "
            "rolled back and nothing of it was written; free disk space and run the command again"
        )
    elif "readonly database" in low or os_errno == errno.EROFS:
        msg = (
            f"database {where} is read-only ({reason}) while {action}; make the file and its "
            "directory writable, or point --db at a writable location"
        )
    elif "read-only" in low or state == "25006":
        msg = (
            f"database {where} accepts only reads ({reason}) while {action}; connect to the "
            "primary server, or as a user allowed to write"
        )
    elif "file is not a database" in low or "malformed" in low:
        msg = (
            f"database {where} is not a SQLite database or is corrupt ({reason}); check that "
            "--db names the portmargin database, or move the file aside to start a new one"
        )
    elif "unable to open database file" in low:
        msg = (
            f"database {where}: cannot open or create the file ({reason}); check that its "
            "directory exists and is writable"
        )
    elif "database is locked" in low:
        msg = (
            f"database {where} is locked by another process ({reason}) while {action}; "
            "wait for it to finish or stop it, then run the command again"
        )
    elif isinstance(exc, CommandError) and "locate revision" in low:
        msg = (
            f"database {where} has a schema revision this portmargin does not know ({reason}); "
            "it was written by a newer portmargin or by another program: upgrade portmargin "
            "or point --db at another database"
        )
    elif state.startswith("08") or (
        isinstance(exc, sa_exc.OperationalError)
        and ("connect" in low or "timeout" in low or "authentication" in low)
    ):
        msg = (
            f"cannot connect to database {where} ({reason}); check that the server is running "
            "and reachable and that host, port, database name, user and password are right"
        )
    elif isinstance(exc, PermissionError) or os_errno == errno.EACCES:
        msg = f"database {where}: permission denied ({reason}) while {action}"
    else:
        msg = f"database {where}: failed while {action} ({reason})"
    return StorageError(" ".join(msg.split()))


@contextmanager
def guard(url: str | URL, action: str) -> Iterator[None]:
    """Translate the database faults raised inside the block into :func:`storage_error`."""
    try:
        yield
    except DB_ERRORS as exc:
        raise storage_error(exc, url, action) from exc

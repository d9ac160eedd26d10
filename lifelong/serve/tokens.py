"""Scoped bearer tokens: ``predict``, ``feedback`` and ``admin`` (snapshot, rollback, state).

Tokens come from two places:

- ``[serve] token`` or the ``LIFELONG_SERVE_TOKEN`` environment variable: one token with every scope
  (the single-token setup);
- ``[serve] token_file``: one token per line, after the scopes it grants, ``#`` starts a comment::

      feedback            3q2...   # the labelling pipeline
      predict             Zx8...   # a client that only asks
      predict,feedback    Hh1...
      admin               Pp0...   # the operator: snapshot, rollback, state

The file is re-read when it changes (its size, modification time or inode), so a token is rotated
by rewriting it, without a restart; a file that no longer parses keeps the previous tokens and is
logged. Every token must be at least 16 printable ASCII characters without whitespace; at start a
bad token is a :class:`~lifelong.errors.ConfigError`. Tokens are compared in constant time and never
logged.

Examples
--------
>>> [(t, sorted(scopes)) for t, scopes in
...  parse_tokens("feedback abcdefghijklmnop0123\\nadmin,predict ABCDEFGHIJKLMNOP0123\\n", where="t")]
[('abcdefghijklmnop0123', ['feedback']), ('ABCDEFGHIJKLMNOP0123', ['admin', 'predict'])]
>>> check_token("secret-with-trailing-space-- ", where="the token")
Traceback (most recent call last):
...
lifelong.errors.ConfigError: the token has leading or trailing whitespace; remove it (a token must be printable ASCII without spaces)
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from pathlib import Path

from lifelong.errors import ConfigError

SCOPES = ("predict", "feedback", "admin")
MIN_TOKEN_LEN = 16
log = logging.getLogger("lifelong.serve")


def check_token(token: str, *, where: str) -> str:
    """``token`` if it is usable, else :class:`ConfigError` saying what is wrong (never the token)."""
    if token != token.strip():
        raise ConfigError(f"{where} has leading or trailing whitespace; remove it (a token must be printable ASCII "
                          "without spaces)")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ConfigError(f"{where} holds whitespace, control or non-ASCII characters; a token must be printable "
                          "ASCII without spaces")
    if len(token) < MIN_TOKEN_LEN:
        raise ConfigError(f"{where} must have at least {MIN_TOKEN_LEN} characters; generate one with "
                          "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`")
    return token


def parse_tokens(text: str, *, where: str) -> list[tuple[str, frozenset[str]]]:
    """The ``(token, scopes)`` lines of a token file; :class:`ConfigError` names the bad line."""
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"{where} line {i}: expected `<scopes> <token>` (scopes: {', '.join(SCOPES)}, "
                              "comma-separated)")
        scopes = frozenset(parts[0].split(","))
        bad = sorted(scopes - set(SCOPES))
        if bad:
            raise ConfigError(f"{where} line {i}: unknown scope(s) {bad}; known: {list(SCOPES)}")
        out.append((check_token(parts[1], where=f"the token on {where} line {i}"), scopes))
    return out


def read_token_file(path: Path) -> list[tuple[str, frozenset[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the token file {path}: {e}") from None
    return parse_tokens(text, where=str(path))


class Tokens:
    """The tokens in force; :meth:`scopes` answers for a presented token, re-reading the file on change."""

    def __init__(self, token: str | None, token_file: Path | None) -> None:
        self._static = [(check_token(token, where="the API token"), frozenset(SCOPES))] if token else []
        self.file = token_file
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._from_file: list[tuple[bytes, frozenset[str]]] = []
        self.reloads = 0
        self.reload_errors = 0
        if token_file is not None:
            self._from_file = [(t.encode(), s) for t, s in read_token_file(token_file)]
            self._stamp = self._stat()
        if not self._static and not self._from_file:
            raise ConfigError(f"no API token in {token_file}; add a line `<scopes> <token>`")

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(self.file)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _refresh(self) -> None:
        if self.file is None:
            return
        stamp = self._stat()
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self._from_file = [(t.encode(), s) for t, s in read_token_file(self.file)]
                self.reloads += 1
                log.info("token file %s re-read: %d token(s)", self.file, len(self._from_file))
            except ConfigError as e:
                self.reload_errors += 1
                log.error("token file not reloaded, the previous tokens stay in force: %s", e)

    def scopes(self, given: str) -> frozenset[str] | None:
        """The scopes of ``given``, or ``None`` if it is no token in force (compared in constant time)."""
        self._refresh()
        g = given.encode("utf-8", "surrogateescape")
        found: frozenset[str] | None = None
        for token, scopes in [(t.encode(), s) for t, s in self._static] + self._from_file:
            if hmac.compare_digest(g, token):  # every token is compared: no early exit
                found = scopes if found is None else found | scopes
        return found

"""Reviewer tokens: who may write to the inspection log through the server.

The token file keeps one line per reviewer, `NAME<TAB>sha256:<hex>`, the SHA-256 of the token and never the
token itself: a copy of the file lets nobody in. A token is shown once, when it is made (`token add`). The file is
written atomically with mode 0600, and refused when it is malformed or anyone may write to it (whoever can write
it can add a reviewer). Tokens are 32 random bytes (secrets.token_urlsafe), so a plain hash is enough: there is
nothing to guess that a slow hash would protect. A presented token is hashed and compared in constant time with
every stored digest (no early exit), so the answer's timing says nothing about which one was close.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from steelinspect.errors import ConfigError
from steelinspect.io import atomic_write

PREFIX = "sha256:"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")  # also the review's reviewer column (128 characters)
DIGEST = re.compile(r"^[0-9a-f]{64}$")
MAX_TOKEN_CHARS = 512  # a presented token longer than this is refused before it is hashed
MAX_FILE_BYTES = 1 << 20


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise ConfigError(f"a reviewer name is 1 to 128 letters, digits or . _ @ - (starting with a letter or "
                          f"digit), got {name!r}")
    return name


def read_tokens(path: str | Path) -> dict[str, str]:
    """{name: hex digest} of a token file; a missing, malformed or world-writable file is refused (ConfigError)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError("no such token file (create it with: steelinspect token add NAME --token-file FILE)",
                          path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the token file: {exc.strerror}", path) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError("the token file is not a regular file", path)
    if info.st_mode & stat.S_IWOTH:
        raise ConfigError("the token file is writable by every user, so anyone could add a reviewer; "
                          "refusing it (chmod 600 it)", path)
    if info.st_size > MAX_FILE_BYTES:
        raise ConfigError(f"the token file is larger than {MAX_FILE_BYTES} bytes; not a token file", path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file: {exc}", path) from None
    tokens: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, tab, hashed = line.partition("\t")
        # The line's content is not echoed: it might be a token pasted by mistake.
        if not tab or not hashed.startswith(PREFIX) or not DIGEST.match(hashed[len(PREFIX):]) \
                or not NAME.match(name):
            raise ConfigError("not a token line (NAME<TAB>sha256:<64 hex digits>)", path, number)
        if name in tokens:
            raise ConfigError(f"reviewer {name!r} is in the token file twice", path, number)
        tokens[name] = hashed[len(PREFIX):]
    return tokens


def _write(path: Path, tokens: dict[str, str]) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text("".join(f"{name}\t{PREFIX}{hexdigest}\n" for name, hexdigest in tokens.items()),
                       encoding="utf-8")
        os.chmod(tmp, 0o600)  # before the rename: the file is never readable by others, not even for a moment


def add_token(path: str | Path, name: str) -> str:
    """Add reviewer `name` with a new random token and return the token (it is not kept anywhere)."""
    path = Path(path)
    check_name(name)
    tokens = read_tokens(path) if path.exists() else {}
    if name in tokens:
        raise ConfigError(f"reviewer {name!r} has a token already (token remove {name} first to replace it)", path)
    token = secrets.token_urlsafe(32)
    _write(path, {**tokens, name: digest(token)})
    return token


def remove_token(path: str | Path, name: str) -> None:
    tokens = read_tokens(path)
    if name not in tokens:
        raise ConfigError(f"no reviewer {name!r} in the token file", path)
    del tokens[name]
    _write(Path(path), tokens)


def list_names(path: str | Path) -> list[str]:
    return list(read_tokens(path))


@dataclass
class _Loaded:
    key: tuple
    tokens: dict[str, str]


class TokenStore:
    """The server's view of a token file: read at start (a bad file stops the start), then read again whenever it
    changes, so `token add` and `token remove` take effect without a restart. A file that turns bad while the
    server runs lets nobody in until it is fixed (fail closed)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._loaded = _Loaded(self._key(), read_tokens(self.path))

    def _key(self) -> tuple:
        try:
            info = self.path.stat()
        except OSError:
            return ()
        return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_mode)

    def _tokens(self) -> dict[str, str]:
        key = self._key()
        with self._lock:
            if key != self._loaded.key:
                try:
                    tokens = read_tokens(self.path)
                except ConfigError:
                    tokens = {}
                self._loaded = _Loaded(key, tokens)
            return self._loaded.tokens

    def reviewer(self, token: str | None) -> str | None:
        """The reviewer whose token this is, or None."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        presented = digest(token).encode()
        found = None
        for name, stored in self._tokens().items():  # every entry compared: no early exit
            if hmac.compare_digest(presented, stored.encode()):
                found = name
        return found

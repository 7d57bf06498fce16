"""Reviewer tokens: the file keeps only hashes, written 0600; bad files are refused; the CLI's token commands; and
`serve` refusing to listen beyond this machine without a token file."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from steelinspect.errors import ConfigError
from steelinspect.serve.tokens import TokenStore, add_token, list_names, read_tokens, remove_token
from tests.cli_runner import run_main


def test_the_token_file_holds_hashes_only_and_is_private(tmp_path):
    path = tmp_path / "tokens.txt"
    anna, ben = add_token(path, "anna"), add_token(path, "ben")
    text = path.read_text()
    assert anna not in text and ben not in text and len(anna) >= 40  # 32 random bytes, url-safe
    assert text.splitlines() == [f"anna\tsha256:{hashlib.sha256(anna.encode()).hexdigest()}",
                                 f"ben\tsha256:{hashlib.sha256(ben.encode()).hexdigest()}"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.txt"]  # no temporary left beside it
    assert list_names(path) == ["anna", "ben"]

    store = TokenStore(path)
    assert store.reviewer(anna) == "anna" and store.reviewer(ben) == "ben"
    assert store.reviewer(anna[:-1]) is None and store.reviewer("") is None and store.reviewer(None) is None
    assert store.reviewer("x" * 10_000) is None

    with pytest.raises(ConfigError, match="has a token already"):
        add_token(path, "anna")
    remove_token(path, "anna")
    assert list_names(path) == ["ben"] and store.reviewer(anna) is None  # the running store sees the change
    carl = add_token(path, "carl")
    assert store.reviewer(carl) == "carl"
    with pytest.raises(ConfigError, match="no reviewer 'anna'"):
        remove_token(path, "anna")
    for bad in ("", "a b", "tab\there", "x" * 129, "-dash", "a/b"):
        with pytest.raises(ConfigError, match="reviewer name"):
            add_token(path, bad)


def test_bad_token_files_are_refused(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(ConfigError, match="no such token file"):
        read_tokens(missing)
    pasted = tmp_path / "pasted.txt"
    pasted.write_text("anna\tsha256:" + "0" * 64 + "\nsome-plain-secret-token\n")
    os.chmod(pasted, 0o600)
    with pytest.raises(ConfigError, match="row 2: not a token line") as refused:
        read_tokens(pasted)
    assert "some-plain-secret-token" not in str(refused.value)  # a token pasted by mistake is not echoed
    twice = tmp_path / "twice.txt"
    twice.write_text(("anna\tsha256:" + "0" * 64 + "\n") * 2)
    with pytest.raises(ConfigError, match="twice"):
        read_tokens(twice)
    open_file = tmp_path / "open.txt"
    add_token(open_file, "anna")
    os.chmod(open_file, 0o666)
    with pytest.raises(ConfigError, match="writable by every user"):
        read_tokens(open_file)
    with pytest.raises(ConfigError, match="writable by every user"):
        TokenStore(open_file)


def test_a_store_whose_file_turns_bad_lets_nobody_in(tmp_path):
    path = tmp_path / "tokens.txt"
    token = add_token(path, "anna")
    store = TokenStore(path)
    assert store.reviewer(token) == "anna"
    path.write_text("garbage\n")
    assert store.reviewer(token) is None


def test_token_commands(tmp_path):
    path = tmp_path / "tokens.txt"
    code, out, err = run_main("token", "add", "anna", "--token-file", path)
    assert code == 0, err
    token = out.strip()
    assert "shown only now" in err and TokenStore(path).reviewer(token) == "anna"
    assert token not in path.read_text()
    code, out, _ = run_main("token", "list", "--token-file", path)
    assert code == 0 and out.split() == ["anna"]
    code, _, err = run_main("token", "add", "anna", "--token-file", path)
    assert code == 1 and "has a token already" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run_main("token", "remove", "anna", "--token-file", path)
    assert code == 0 and "removed reviewer anna" in out
    code, _, err = run_main("token", "list", "--token-file", tmp_path / "none.txt")
    assert code == 1 and "no such token file" in err


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "station.example"])
def test_serve_beyond_this_machine_needs_a_token_file(host, tmp_path):
    # Refused before any model loads (the run folders do not even exist).
    code, _, err = run_main("serve", "--binary", tmp_path / "b", "--multiclass", tmp_path / "m", "--host", host)
    assert code == 1 and "give --token-file" in err and len(err.strip().splitlines()) == 1


def test_serve_refuses_a_missing_token_file_before_loading_models(tmp_path):
    code, _, err = run_main("serve", "--binary", tmp_path / "b", "--multiclass", tmp_path / "m", "--host", "0.0.0.0",
                            "--token-file", tmp_path / "tokens.txt")
    assert code == 1 and "no such token file" in err


def test_loopback_hosts():
    from steelinspect.serve.app import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com", ""))

"""Provenance: the checkpoint fingerprint cache (file names, sizes, times) and what results.json may record."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tinyllava_bench.engine.provenance import checkpoint_fingerprint


def _plain_sha(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".json", ".safetensors")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()


def test_cached_fingerprint_is_the_hash_and_follows_every_change(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLAVA_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": 1}')
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\x00" * 1000)
    first = checkpoint_fingerprint(str(folder))
    assert first == _plain_sha(folder)
    assert len(list((tmp_path / "cache" / "fingerprints").glob("*.txt"))) == 1
    assert checkpoint_fingerprint(str(folder)) == first  # from the cache

    # same size, new bytes, new time: hashed again
    weights.write_bytes(b"\x01" * 1000)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = checkpoint_fingerprint(str(folder))
    assert second != first and second == _plain_sha(folder)

    # a cache that cannot be read or written changes nothing
    for cached in (tmp_path / "cache" / "fingerprints").glob("*.txt"):
        cached.write_text("garbage")
    assert checkpoint_fingerprint(str(folder)) == second
    monkeypatch.setenv("TINYLLAVA_BENCH_CACHE_DIR", str(weights))  # a file, not a folder
    assert checkpoint_fingerprint(str(folder)) == second


def test_judge_url_credentials_never_reach_results_json():
    from pathlib import Path

    from tinyllava_bench.engine.eval_config import EvalConfig, redact_url

    url = "https://user:s3cret@judge.example/v1?api-key=k3y&x=1"
    public = EvalConfig(model="m", tasks=["mmvet"], output=Path("o"), judge_base_url=url).public()
    assert public["judge_base_url"] == "https://***@judge.example/v1?api-key=***&x=***"
    assert "s3cret" not in str(public) and "k3y" not in str(public)
    assert redact_url("http://localhost:8000/v1") == "http://localhost:8000/v1"
    assert redact_url(None) is None


def test_commit_of_a_checkout_says_when_the_package_differs_from_it(tmp_path: Path) -> None:
    import subprocess

    from tinyllava_bench.engine.provenance import commit_of

    assert commit_of(tmp_path, "pkg") is None  # not a checkout

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("n\n")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert commit_of(tmp_path, "pkg") == head
    (tmp_path / "notes.txt").write_text("changed outside the package\n")
    assert commit_of(tmp_path, "pkg") == head
    (tmp_path / "pkg" / "b.py").write_text("y = 2\n")  # a new module counts
    assert commit_of(tmp_path, "pkg") == f"{head}-dirty"
    (tmp_path / "pkg" / "b.py").unlink()
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert commit_of(tmp_path, "pkg") == f"{head}-dirty"

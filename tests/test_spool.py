"""The upload spool: private, cleared of what dead runs left, never of what a live service is still using."""

import logging
import os

import pytest

from service.spool import LOCK_NAME, SpoolError, UploadSpool


def test_a_private_spool_whose_leftovers_go_at_the_next_start(tmp_path, caplog):
    root = tmp_path / "spool"
    first = UploadSpool.open(root)
    assert root.stat().st_mode & 0o777 == 0o700 and first.run_dir.parent == root
    fd, path = first.new_file()
    os.write(fd, b"a person's video")
    os.close(fd)
    assert path.stat().st_mode & 0o777 == 0o600 and first.files() == [path]

    # A second service on the same spool keeps its hands off the first one's uploads: its lock is held.
    second = UploadSpool.open(root)
    assert second.removed_at_start == 0 and path.exists()
    second.close()

    # The first dies without closing (its lock goes with the process; here: the descriptor is closed).
    os.close(first._lock_fd)
    (root / "stray.upload").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="service.spool"):
        third = UploadSpool.open(root)
    assert third.removed_at_start == 2 and not path.exists() and not first.run_dir.exists()
    assert "removed 2 leftover upload(s)" in caplog.text
    third.close()
    assert not third.run_dir.exists() and sorted(p.name for p in root.iterdir()) == [".open.lock"]
    assert not list(root.rglob(LOCK_NAME))


def test_a_spool_path_that_is_a_link_or_too_open_is_not_trusted(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(SpoolError, match="not a folder"):
        UploadSpool.open(tmp_path / "link")
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    UploadSpool.open(loose).close()
    assert loose.stat().st_mode & 0o777 == 0o700



def test_a_bad_spool_dir_stops_the_service_before_it_serves(tmp_path, monkeypatch, capsys):
    from service.__main__ import main

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("EMOTION_SPOOL_DIR", str(tmp_path / "file"))
    assert main(["serve", "--no-live", "--port", "8799"]) == 2
    assert "error: cannot create the upload spool" in capsys.readouterr().err

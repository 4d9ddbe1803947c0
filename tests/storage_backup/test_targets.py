"""Target resolution: every path a user types must stay inside a backup root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import InvalidArgument, NotFound, PermissionDenied
from storage.backup import Repository, resolve_target


def s3_options(target: Any) -> dict[str, Any]:
    """The options an S3FileSystem was built with (pyarrow exposes them via pickling)."""
    options: dict[str, Any] = target.fs.__reduce__()[1][0]
    return options


def test_name_resolves_under_first_root_without_creating_it(tmp_path: Path) -> None:
    first, second = tmp_path / "r1", tmp_path / "r2"
    target = resolve_target("nightly", [str(first), str(second)], {})
    assert target.kind == "local"
    assert target.base == target.uri == str(first.resolve() / "nightly")
    assert first.is_dir() and second.is_dir()  # roots are created
    assert not (first / "nightly").exists()  # the target is not


def test_relative_path_and_dot_components(root: Path) -> None:
    assert resolve_target("a/b/c", [str(root)], {}).base == str(root.resolve() / "a/b/c")
    assert resolve_target("./a//b/", [str(root)], {}).base == str(root.resolve() / "a/b")


def test_absolute_inside_any_root(tmp_path: Path) -> None:
    first, second = tmp_path / "r1", tmp_path / "r2"
    target = resolve_target(str(second / "x"), [str(first), str(second)], {})
    assert target.base == str(second.resolve() / "x")


@pytest.mark.parametrize("path", ["/etc/cairn", "/tmp", "/"])
def test_absolute_outside_roots_is_denied(root: Path, path: str) -> None:
    with pytest.raises(PermissionDenied, match="outside the backup roots"):
        resolve_target(path, [str(root)], {})


def test_sibling_with_common_prefix_is_outside(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    with pytest.raises(PermissionDenied):
        resolve_target(str(tmp_path / "backups-evil" / "x"), [str(root)], {})


@pytest.mark.parametrize("target", ["..", "../x", "a/../b", "a/..", "a/../../etc"])
def test_dotdot_is_rejected_outright(root: Path, target: str) -> None:
    with pytest.raises(PermissionDenied, match=r"'\.\.'"):
        resolve_target(target, [str(root)], {})


def test_absolute_dotdot_is_rejected(root: Path) -> None:
    with pytest.raises(PermissionDenied):
        resolve_target(f"{root}/x/../y", [str(root)], {})


def test_symlinked_target_dir_pointing_outside(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "escape").symlink_to(outside)
    with pytest.raises(PermissionDenied, match="'escape' resolves outside"):
        resolve_target("escape", [str(root)], {})
    with pytest.raises(PermissionDenied):
        resolve_target(str(root / "escape"), [str(root)], {})


def test_symlinked_parent_pointing_outside(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "parent").symlink_to(outside)
    with pytest.raises(PermissionDenied, match="parent/new"):
        resolve_target("parent/new", [str(root)], {})


def test_dangling_symlink_pointing_outside(root: Path, tmp_path: Path) -> None:
    root.mkdir()
    (root / "dangling").symlink_to(tmp_path / "not-yet")
    with pytest.raises(PermissionDenied):
        resolve_target("dangling", [str(root)], {})


def test_symlink_staying_inside_is_fine(root: Path) -> None:
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real")
    assert resolve_target("alias", [str(root)], {}).base == str(root.resolve() / "real")


def test_symlinked_root_is_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real-root"
    real.mkdir()
    (tmp_path / "root-link").symlink_to(real)
    target = resolve_target("t", [str(tmp_path / "root-link")], {})
    assert target.base == str(real.resolve() / "t")
    # the configured (symlinked) spelling and the resolved one are both accepted
    assert resolve_target(str(tmp_path / "root-link" / "t"), [str(tmp_path / "root-link")], {})
    assert resolve_target(str(real / "t"), [str(tmp_path / "root-link")], {})


@pytest.mark.parametrize("target", ["", "   ", "\t"])
def test_empty_target(root: Path, target: str) -> None:
    with pytest.raises(InvalidArgument, match="must not be empty"):
        resolve_target(target, [str(root)], {})


def test_nul_and_unsupported_scheme(root: Path) -> None:
    with pytest.raises(InvalidArgument):
        resolve_target("a\x00b", [str(root)], {})
    for uri in ("file:///tmp/x", "gs://bucket/x", "http://host/x"):
        with pytest.raises(InvalidArgument, match="unsupported scheme"):
            resolve_target(uri, [str(root)], {})


def test_root_itself_and_files_are_not_targets(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="backup root itself"):
        resolve_target(".", [str(root)], {})
    with pytest.raises(InvalidArgument, match="backup root itself"):
        resolve_target(str(root), [str(root)], {})
    (root / "plain").write_text("not a directory")
    with pytest.raises(InvalidArgument, match="not a directory"):
        resolve_target("plain", [str(root)], {})


def test_no_roots_configured() -> None:
    with pytest.raises(PermissionDenied, match="no backup roots"):
        resolve_target("x", [], {})


def test_listing_a_missing_target_is_not_found_and_creates_nothing(root: Path) -> None:
    repo = Repository(resolve_target("missing", [str(root)], {}))
    with pytest.raises(NotFound, match=r"backup target '.*missing' does not exist"):
        repo.list_manifests()
    with pytest.raises(NotFound, match="does not exist"):
        repo.read_manifest("bk-1")
    assert not (root / "missing").exists()


def test_writing_creates_the_target(root: Path) -> None:
    repo = Repository(resolve_target("deep/new", [str(root)], {}))
    repo.put_bytes(b"hello")
    assert (root / "deep/new/config.json").is_file()
    assert repo.list_manifests() == []


# --- S3 (construction only: no network) ----------------------------------------

NAMED = {
    "offsite": {
        "uri": "s3://cairn-bucket/prod/backups/",
        "endpoint": "http://127.0.0.1:9000",
        "access_key": "AKIA-TEST",
        "secret_key": "s3cr3t",
        "region": "eu-west-1",
    }
}


def test_named_s3_target(root: Path) -> None:
    target = resolve_target("offsite", [str(root)], NAMED)
    assert (target.kind, target.base, target.uri) == (
        "s3",
        "cairn-bucket/prod/backups",
        "s3://cairn-bucket/prod/backups",
    )
    options = s3_options(target)
    assert options["endpoint_override"] == "127.0.0.1:9000"
    assert options["scheme"] == "http"
    assert options["access_key"] == "AKIA-TEST"
    assert options["secret_key"] == "s3cr3t"
    assert options["region"] == "eu-west-1"
    assert "s3cr3t" not in repr(target)
    assert not (root / "offsite").exists()


def test_s3_uri_borrows_credentials_of_named_target_with_same_bucket(root: Path) -> None:
    target = resolve_target("s3://cairn-bucket/other", [str(root)], NAMED)
    assert target.base == "cairn-bucket/other"
    assert s3_options(target)["access_key"] == "AKIA-TEST"


def test_s3_uri_of_unknown_bucket_uses_default_credentials(root: Path) -> None:
    target = resolve_target("s3://someone-else", [str(root)], NAMED)
    assert (target.base, target.uri) == ("someone-else", "s3://someone-else")
    assert not s3_options(target)["access_key"]


def test_https_endpoint_scheme() -> None:
    named = {"o": {"uri": "s3://b/p", "endpoint": "https://s3.example.com"}}
    options = s3_options(resolve_target("o", [], named))
    assert (options["scheme"], options["endpoint_override"]) == ("https", "s3.example.com")


@pytest.mark.parametrize(
    "uri",
    ["s3://", "s3:///prefix", "s3://b/../x", "s3://b/a//c", "s3://b/x?region=y", "s3://k:s@b/x"],
)
def test_malformed_s3_uris(root: Path, uri: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve_target(uri, [str(root)], {})


def test_named_target_must_be_s3() -> None:
    with pytest.raises(InvalidArgument, match="not s3"):
        resolve_target("odd", [], {"odd": {"uri": "/var/backups"}})


def test_paths_are_plain_strings_even_with_odd_names(root: Path) -> None:
    for name in ("x.zip", "with space", "ünïcode"):
        target = resolve_target(name, [str(root)], {})
        assert os.path.basename(target.base) == name


def test_archive_names_are_files_confined_like_directories(root: Path, tmp_path: Path) -> None:
    for name in ("a.tar", "sub/b.TAR.ZST", "c.tar.zst"):
        target = resolve_target(name, [str(root)], {})
        assert target.kind == "archive"
        assert target.base == str(root.resolve() / name)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside / "x.tar", root / "link.tar")
    with pytest.raises(PermissionDenied):
        resolve_target("link.tar", [str(root)], {})
    with pytest.raises(PermissionDenied):
        resolve_target("../x.tar", [str(root)], {})
    (root / "old.tar").mkdir()  # a directory named like an archive stays a directory
    assert resolve_target("old.tar", [str(root)], {}).kind == "local"
    with pytest.raises(InvalidArgument, match="archives"):
        resolve_target("s3://bucket/x.tar.zst", [str(root)], {})


@pytest.mark.parametrize("target", ["d/" * 2000, "x" * 256, "a/" + "é" * 128])
def test_a_target_too_long_for_its_contents_is_refused(root: Path, target: str) -> None:
    """Too long a path, or one name over 255 bytes (é is two), is INVALID_ARGUMENT
    before anything is made, not an OS error from a write later."""
    with pytest.raises(InvalidArgument, match="is too long: at most"):
        resolve_target(target, [str(root)], {})
    assert list(root.iterdir()) == []


def test_the_longest_names_that_fit_are_taken(root: Path) -> None:
    assert resolve_target("x" * 255, [str(root)], {}).kind == "local"
    assert resolve_target("s3://bucket/" + "p" * 255, [str(root)], {}).kind == "s3"


def test_an_s3_prefix_too_long_for_its_keys_is_refused(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="is too long: at most 768 bytes"):
        resolve_target("s3://bucket/" + "p/" * 400, [str(root)], {})


def test_a_root_that_is_a_file_fails_only_the_targets_in_it(tmp_path: Path) -> None:
    """Roots [A, B] with B a file (an unmounted mount point replaced): every
    target, also those in A, was FileExistsError (500 INTERNAL)."""
    first, second = tmp_path / "r1", tmp_path / "r2"
    second.write_text("not a directory")
    assert resolve_target("nightly", [str(first), str(second)], {}).base == str(
        first.resolve() / "nightly")
    assert resolve_target(str(first / "x"), [str(first), str(second)], {}).kind == "local"
    with pytest.raises(InvalidArgument, match=f"backup root '{second}' is not a directory"):
        resolve_target(str(second / "x"), [str(first), str(second)], {})
    with pytest.raises(InvalidArgument, match=f"backup root '{second}' is not a directory"):
        resolve_target("nightly", [str(second), str(first)], {})  # relative: the first root
    assert second.read_text() == "not a directory"


def test_a_root_that_cannot_be_made_fails_only_the_targets_in_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A root under a read-only parent (EROFS; as root no chmod refuses, so the
    one makedirs call raises it): PERMISSION_DENIED naming the root, for the
    targets in it only."""
    import errno

    first, second = tmp_path / "r1", tmp_path / "r2"
    first.mkdir()
    real_makedirs = os.makedirs

    def makedirs(path: Any, *args: Any, **kw: Any) -> None:
        if str(path) == str(second):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        real_makedirs(path, *args, **kw)

    monkeypatch.setattr(os, "makedirs", makedirs)
    assert resolve_target("nightly", [str(first), str(second)], {}).kind == "local"
    with pytest.raises(PermissionDenied,
                       match=f"backup root '{second}' cannot be created: .*Read-only"):
        resolve_target(str(second / "x"), [str(first), str(second)], {})


def test_a_root_gone_while_running_is_made_again_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "r1"
    root.mkdir()
    resolve_target("nightly", [str(root)], {})
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    root.rmdir()
    resolve_target("nightly", [str(root)], {})
    assert root.is_dir()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"backup root '{root}' is gone since the server first found it" in warning


def test_a_target_in_the_data_dirs_own_folders_is_refused(tmp_path: Path) -> None:
    """A root holding the data directory ([storage] data_dir = D with roots =
    [D], or roots = ["/"]) let BACKUP write into the server's tmp/, files/ and
    catalog/, "completed", and the next start deleted those backups. Only the
    data directory's backups/ (the default root) may hold backups."""
    data = tmp_path / "data"
    for own in ("catalog", "files", "tmp"):
        (data / own).mkdir(parents=True)
    for roots in ([str(data)], ["/"], [str(tmp_path)]):
        for target in ("tmp", "files", "catalog", "tmp/x", "mine", "files/a.tar",
                       str(data / "tmp"), str(data / "mine")):
            if not target.startswith("/"):  # relative: under the first root
                target = os.path.join(os.path.relpath(data, roots[0]), target)
            with pytest.raises(PermissionDenied, match="inside the server's data directory"):
                resolve_target(target, roots, {}, str(data))
    (tmp_path / "elsewhere").symlink_to(data / "files")
    with pytest.raises(PermissionDenied, match="inside the server's data directory"):
        resolve_target("elsewhere", [str(tmp_path)], {}, str(data))
    inside = resolve_target("backups/nightly", [str(data)], {}, str(data))
    assert inside.base == str(data.resolve() / "backups" / "nightly")
    default = resolve_target("nightly", [str(data / "backups")], {}, str(data))
    assert default.base == str(data.resolve() / "backups" / "nightly")
    # Not the server's tmp/ but /tmp, a shared sticky folder: a way, not a target.
    with pytest.raises(PermissionDenied, match=r"'/tmp' can be written by any user \(mode 1777\)"):
        resolve_target("tmp", ["/"], {}, str(data))
    assert resolve_target("tmp/mine", ["/"], {}, str(data)).base == "/tmp/mine"


def test_leading_double_slash_is_the_same_path(root: Path) -> None:
    """`os.path.normpath` keeps a leading '//' (POSIX leaves it to the system;
    on Linux it is '/'): with roots = ["/"], '//' was not "the root itself" but a
    target in it based at '/.', whose config.json, manifests/ and objects/ went
    into '/' itself (refused here only for the links at '/', like bin)."""
    with pytest.raises(InvalidArgument, match="backup root itself"):
        resolve_target("//", ["/"], {})
    with pytest.raises(InvalidArgument, match="backup root itself"):
        resolve_target("/" + str(root), [str(root)], {})
    target = resolve_target("//" + str(root).lstrip("/") + "/t", [str(root)], {})
    assert target.base == str(root.resolve() / "t")

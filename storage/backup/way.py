"""The way to a local backup target (or an archive): the folders from `/` down
to it, as a job makes them.

A target is resolved when its statement is accepted (targets.py); a detached or
queued BACKUP makes its folders later, in the job. Whatever is found then is
looked at again: a folder of another user's, or one any user may write to
(owners.py), made after the statement was accepted (the name was free in a
shared root), is PERMISSION_DENIED naming it, never written into; a regular
file on the way is INVALID_ARGUMENT naming it ("File exists" said nothing).
Folders made here are 0700 whatever the umask (`os.makedirs` gives the ones on
the way 0777 less the umask: 0755)."""

from __future__ import annotations

import os
import stat

from catalog.errors import InvalidArgument, PermissionDenied
from storage.owners import others_hold

DIR_MODE = 0o700


def refuse_foreign(target: str, path: str, why: str) -> PermissionDenied:
    """A folder on the way of another user's (a root or target name taken first
    in a shared folder such as /var/tmp): the backups written there went into
    it, theirs to remove, or to replace with backups of their own making."""
    return PermissionDenied(
        f"backup target '{target}' is not allowed: '{path}' {why}: another user could "
        f"remove its backups or put others in their place")


def refuse_file(target: str, path: str) -> InvalidArgument:
    """A regular file (or anything but a folder) where a folder on the way belongs."""
    return InvalidArgument(
        f"backup target '{target}' is not allowed: '{path}' is a file, not a folder: "
        f"a target (or an archive) cannot be made below it")


def file_on_way(target: str, path: str) -> None:
    """For a target not there yet: the nearest of its parents that is there
    must be a folder (one lstat, or a few when several are missing)."""
    above = os.path.dirname(path)
    while above != path:
        try:
            st = os.stat(above)
        except (FileNotFoundError, NotADirectoryError):
            path, above = above, os.path.dirname(above)
            continue
        except (OSError, ValueError):
            return  # the job's own error will say it
        if not stat.S_ISDIR(st.st_mode):
            raise refuse_file(target, above)
        return


def make_way(path: str, target: str) -> None:
    """Make the folders of the absolute `path` that are not there (0700), and
    look at each that is, from `/` down: another user's, or open to any user's
    writes, is refused (a link too: judged by its owner, they could point it
    elsewhere), and so is a file."""
    here = os.sep
    for name in path.strip(os.sep).split(os.sep):
        here = os.path.join(here, name)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            try:
                os.mkdir(here, DIR_MODE)
                os.chmod(here, DIR_MODE)  # a umask of 0o700's bits would take the owner's too
            except FileExistsError:
                pass  # made at this moment by someone else: looked at below
            st = os.lstat(here)
        except NotADirectoryError:
            raise refuse_file(target, os.path.dirname(here)) from None
        if (why := others_hold(st)) is not None:
            raise refuse_foreign(target, here, why)
        if stat.S_ISLNK(st.st_mode):  # the server's own, or root's (/var/run): followed
            st = os.stat(here)
            if (why := others_hold(st)) is not None:
                raise refuse_foreign(target, here, why)
        if not stat.S_ISDIR(st.st_mode):
            raise refuse_file(target, here)

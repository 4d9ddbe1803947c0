"""A local backup target holding a file whose name is not UTF-8 (in any of
its folders): not Cairn's, left alone. pyarrow cannot name it (a
UnicodeEncodeError building its FileInfo), and every statement that listed
the folder answered 500 INTERNAL. The same on S3: test_backup_s3_lies.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from server.config import Config
from tests.helpers import ok

NAME = b"bk-\xff\xfe.json"


async def test_a_file_named_in_no_utf8_is_left_alone(client: Any, cairn_config: Config) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1); FLUSH TABLE app.t")
    backup_id = (await ok(client, "BACKUP DATABASE app TO 'x'"))[0]["rows"][0]["backup_id"]
    target = os.fsencode(Path(cairn_config.backup_roots[0]) / "x")
    planted = []
    for folder in (b"", b"manifests", b"locks", b"prunes", b"keys", b"tmp", b"objects/ab"):
        path = os.path.join(target, folder, NAME)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"not Cairn's")
        planted.append(path)
    rows = (await ok(client, "SHOW BACKUPS IN 'x'"))[0]["rows"]
    assert [r["backup_id"] for r in rows] == [backup_id]
    await ok(client, "BACKUP DATABASE app TO 'x' WITH (encryption_passphrase = 'pw-123456789')")
    await ok(client, "RESTORE DATABASE app FROM 'x' AS cp WITH (encryption_passphrase = "
                     "'pw-123456789')")
    await ok(client, f"DROP BACKUP '{backup_id}' IN 'x'")
    assert all(os.path.exists(p) for p in planted)  # never moved or removed

"""A new base for an archive whose namespace is dropped.

Archiving follows the namespace's name (a DROP NAMESPACE is archived, and a
namespace created again under the name is archived too). When the loop needs
a new base meanwhile (the window's base dropped, a segment lost, the target
emptied, an archive left for a new one) there is nothing to back up: a base
job started then only failed "Namespace … does not exist", again at each retry
of the loop's backoff (up to 30 s), a new `failed` row in system.jobs each
time for as long as the name stayed dropped, and the backoff held up the base
of the namespace created again (its first seconds in no window). So the loop
starts no job while the namespace does not exist: SHOW ARCHIVES reads
`failed` saying why, and the loop looks for the namespace every
NAMESPACE_CHECK_S, taking the base at the first look after CREATE NAMESPACE."""

from __future__ import annotations

import logging

from catalog import Catalog, Namespace
from catalog.errors import CairnError

log = logging.getLogger("cairn.archive")

NAMESPACE_CHECK_S = 1.0  # how often a base awaiting its dropped namespace looks for it


class NamespaceAwaited(CairnError):
    """A new base is needed and the namespace does not exist: no job is started."""


def namespace_awaited(catalog: Catalog, namespace: str, already: bool) -> NamespaceAwaited | None:
    """None when the namespace exists (take the base); else what the archive
    says while it waits (logged once: `already` is whether it waited before)."""
    if catalog.get(Namespace, namespace) is not None:
        return None
    if not already:
        log.warning("archive of %s: a new base backup is needed and the namespace is dropped; "
                    "it is taken once the namespace is created again", namespace)
    return NamespaceAwaited(
        f"a new base backup is needed and namespace '{namespace}' does not exist (dropped): "
        "it is taken once the namespace is created again")

"""Continuous archiving: the change log every committed change of an archived
namespace goes through (`changes.py`), the segment format archived changes are
shipped in (`segment.py`), a target's archived segments (`store.py`) and replay
onto a base backup (`replay.py`). See docs/backup-format.md, "Archived changes"."""

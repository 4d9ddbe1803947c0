"""Whether an Arrow type holds, at any depth, a type of some kind: the one
walk over dictionaries, maps, lists, structs and unions that the answer's
checks share (storage/duck.py: UHUGEINT, wrapped INTERVALs; storage/bits.py:
BIT). Three copies of it each missed a different container (a UHUGEINT
inside a UNION was not looked for)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa


def holds(t: pa.DataType, kind: Callable[[pa.DataType], bool]) -> bool:
    if kind(t):
        return True
    if pa.types.is_dictionary(t):
        return holds(t.value_type, kind)
    if pa.types.is_map(t):
        return holds(t.key_type, kind) or holds(t.item_type, kind)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return holds(t.value_type, kind)
    if pa.types.is_struct(t) or pa.types.is_union(t):
        return any(holds(t.field(i).type, kind) for i in range(t.num_fields))
    return False

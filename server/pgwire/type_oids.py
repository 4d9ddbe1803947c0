"""The type OIDs a Parse may declare for its parameters: PostgreSQL's own
(its pg_type rows below 10000, fixed from release to release; Cairn defines
no types of its own). Any other is 42704, "type with OID N does not exist":
until 2026-12-08 it was taken as text, where PostgreSQL refuses it (with an
internal "cache lookup failed for type N" once the parameter is used)."""

from __future__ import annotations

from .errors import PgError

# PostgreSQL 15's pg_type OIDs below 10000 (`SELECT oid FROM pg_type WHERE oid < 10000`),
# as inclusive ranges: base, pseudo, range and multirange types, their arrays,
# and the few catalogs' row types of fixed OID.
_RANGES = (
    (16, 30), (32, 32), (71, 71), (75, 75), (81, 81), (83, 83), (114, 114), (142, 143),
    (194, 194), (199, 199), (210, 210), (269, 273), (325, 325), (600, 604), (628, 629),
    (650, 651), (700, 701), (705, 705), (718, 719), (774, 775), (790, 791), (829, 829),
    (869, 869), (1000, 1003), (1005, 1022), (1027, 1028), (1033, 1034), (1040, 1043),
    (1082, 1083), (1114, 1115), (1182, 1187), (1231, 1231), (1248, 1248), (1263, 1263),
    (1266, 1266), (1270, 1270), (1560, 1563), (1700, 1700), (1790, 1790), (2201, 2211),
    (2249, 2249), (2275, 2281), (2283, 2283), (2287, 2287), (2776, 2776), (2842, 2843),
    (2949, 2951), (2970, 2970), (3115, 3115), (3220, 3221), (3310, 3310), (3361, 3361),
    (3402, 3402), (3500, 3500), (3614, 3615), (3642, 3645), (3734, 3735), (3769, 3770),
    (3802, 3802), (3807, 3807), (3831, 3831), (3838, 3838), (3904, 3913), (3926, 3927),
    (4066, 4066), (4072, 4073), (4089, 4090), (4096, 4097), (4191, 4192), (4451, 4451),
    (4532, 4538), (4600, 4601), (5017, 5017), (5038, 5039), (5069, 5069), (5077, 5080),
    (6101, 6101), (6150, 6153), (6155, 6155), (6157, 6157),
)  # fmt: skip
POSTGRES_TYPES = frozenset(oid for low, high in _RANGES for oid in range(low, high + 1))


def refuse_unknown(declared: list[int]) -> None:
    """42704 for the first declared parameter type no type has (0: left open)."""
    for oid in declared:
        if oid and oid not in POSTGRES_TYPES:
            raise PgError("42704", f"type with OID {oid} does not exist")

"""A Parquet footer with some columns' statistics taken out, nothing else
changed: for files whose REAL/DOUBLE statistics hide NaN rows (nanstats.py),
written again without decoding a value (a file's pages may decode to far
more than it holds: a dictionary page of one 1 MiB value under every row).

The footer is Thrift's compact protocol (parquet.thrift `FileMetaData`). The
walk copies every field's bytes as they are but for `ColumnMetaData.statistics`
(field 12) of the chosen leaf columns, and writes each field header again,
since a compact header holds the field id as a delta from the previous one.
Anything the walk does not know how to read raises FooterError; the caller
then leaves the file as it is."""

from __future__ import annotations

from collections.abc import Callable

# on_field(field id, type, value start, depth, out) -> (keep the field, the
# position after its value, or -1 when it did not walk it): see _struct.
OnField = Callable[[int, int, int, int, bytearray], tuple[bool, int]]
Each = Callable[[int, int, bytearray], int]  # (index, position, out) -> position after

# Compact protocol types.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = \
    range(13)
_FIXED = {_BYTE: 1, _DOUBLE: 8}
# Field ids on the way to a column chunk's statistics, and to the key-value metadata.
_ROW_GROUPS, _COLUMNS, _META_DATA, _STATISTICS = 4, 1, 3, 12
_KEY_VALUE, _TYPE = 5, 1
_FLOAT_TYPES = (4, 5)  # parquet.thrift Type FLOAT, DOUBLE
_MIN_MAX = ((5, 6), (1, 2))  # Statistics min_value/max_value, or the older min/max
MAX_DEPTH = 64  # parquet.thrift nests a handful; deeper is damage


class FooterError(ValueError):
    """A footer the walk cannot read."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise FooterError("a varint runs past the footer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _put_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _field(buf: bytes, pos: int, last: int) -> tuple[int, int, int]:
    """(type, field id, position after the header); type _STOP ends a struct."""
    if pos >= len(buf):
        raise FooterError("a struct runs past the footer")
    head = buf[pos]
    kind, delta = head & 0x0F, head >> 4
    if kind == _STOP:
        return _STOP, 0, pos + 1
    if delta:
        return kind, last + delta, pos + 1
    raw, pos = _varint(buf, pos + 1)
    return kind, _zigzag(raw), pos


def _skip(buf: bytes, pos: int, kind: int, depth: int = 0) -> int:
    """The position after a value of `kind` at `pos`."""
    if depth > MAX_DEPTH:
        raise FooterError("the footer nests too deeply")
    if kind in (_TRUE, _FALSE):
        return pos
    if kind in _FIXED:
        return _within(buf, pos + _FIXED[kind])
    if kind in (_I16, _I32, _I64):
        return _varint(buf, pos)[1]
    if kind == _BINARY:
        size, pos = _varint(buf, pos)
        return _within(buf, pos + size)
    if kind in (_LIST, _SET):
        size, elem, pos = _list_head(buf, pos)
        _within(buf, pos + size)  # every element takes a byte at least
        for _ in range(size):
            pos = pos + 1 if elem in (_TRUE, _FALSE) else _skip(buf, pos, elem, depth + 1)
        return pos
    if kind == _MAP:
        size, pos = _varint(buf, pos)
        if size:
            _within(buf, pos + 1 + 2 * size)
            types, pos = buf[pos], pos + 1
            for _ in range(size):
                pos = _skip(buf, pos, types >> 4, depth + 1)
                pos = _skip(buf, pos, types & 0x0F, depth + 1)
        return pos
    if kind == _STRUCT:
        last = 0
        while True:
            ftype, last, pos = _field(buf, pos, last)
            if ftype == _STOP:
                return pos
            pos = _skip(buf, pos, ftype, depth + 1)
    raise FooterError(f"unknown Thrift type {kind}")


def _within(buf: bytes, end: int) -> int:
    if end > len(buf):
        raise FooterError("a value runs past the footer")
    return end


def _list_head(buf: bytes, pos: int) -> tuple[int, int, int]:
    if pos >= len(buf):
        raise FooterError("a list runs past the footer")
    head = buf[pos]
    size, elem, pos = head >> 4, head & 0x0F, pos + 1
    if size == 15:
        size, pos = _varint(buf, pos)
    return size, elem, pos


def _put_field(out: bytearray, kind: int, fid: int, last: int) -> None:
    if 0 < fid - last <= 15:
        out.append(((fid - last) << 4) | kind)
    else:
        out.append(kind)
        _put_varint(out, (fid << 1) ^ (fid >> 63))


def _struct(buf: bytes, pos: int, out: bytearray, on_field: OnField, depth: int = 0) -> int:
    """Copy the struct at `pos` into `out`; the position after it. Each
    field goes to `on_field`, which says whether it is kept, and may write
    the value as it should be into the bytearray it is given (left empty:
    the value is copied as it is). A value `on_field` walks (to write it) is
    walked once: the position after it is what it says, not skipped to
    first. `depth`: of the fields' values, as `_skip` counts it from the
    footer's top (a walk and a skip refuse the same nesting)."""
    last_in = last_out = 0
    while True:
        kind, fid, vpos = _field(buf, pos, last_in)
        if kind == _STOP:
            out.append(_STOP)
            return vpos
        last_in = fid
        part = bytearray()
        keep, end = on_field(fid, kind, vpos, depth, part)
        if end < 0:
            end = _skip(buf, vpos, kind, depth)
        if keep:
            _put_field(out, kind, fid, last_out)
            out += part if part else buf[vpos:end]
            last_out = fid
        pos = end


def without_statistics(footer: bytes, columns: set[int]) -> bytes:
    """`footer` (a FileMetaData) with the statistics of the leaf columns at
    the indices `columns` taken out of every row group."""

    def column_chunk(index: int) -> OnField:
        def on(fid: int, kind: int, start: int, depth: int, out: bytearray) -> tuple[bool, int]:
            if fid == _META_DATA and kind == _STRUCT and index in columns:
                return True, _struct(footer, start, out, _no_statistics, depth + 1)
            return True, -1
        return on

    def row_group(fid: int, kind: int, start: int, depth: int, out: bytearray) -> tuple[bool, int]:
        if fid == _COLUMNS and kind == _LIST:
            return True, _list(start, out, lambda i, s, o: _struct(
                footer, s, o, column_chunk(i), depth + 2))
        return True, -1

    def file_meta(fid: int, kind: int, start: int, depth: int, out: bytearray) -> tuple[bool, int]:
        if fid == _ROW_GROUPS and kind == _LIST:
            return True, _list(start, out, lambda i, s, o: _struct(
                footer, s, o, row_group, depth + 2))
        return True, -1

    def _list(start: int, out: bytearray, each: Each) -> int:
        """Each struct of the list at `start` to `each`; the position after it."""
        size, elem, pos = _list_head(footer, start)
        if elem != _STRUCT:
            raise FooterError("a list of row groups or column chunks holds no structs")
        _within(footer, pos + size)  # every element takes a byte at least
        out += footer[start:pos]
        for i in range(size):
            pos = each(i, pos, out)
        return pos

    out = bytearray()
    end = _struct(footer, 0, out, file_meta)
    if end != len(footer):
        raise FooterError("bytes after the footer's struct")
    return bytes(out)


def _no_statistics(fid: int, kind: int, start: int, depth: int,
                   out: bytearray) -> tuple[bool, int]:
    return fid != _STATISTICS, -1


def float_min_max(footer: bytes) -> tuple[dict[bytes, bytes], set[int]]:
    """A FileMetaData's key-value metadata, and the leaf columns of type
    FLOAT or DOUBLE that have a min and a max in some row group: read in
    Python, without pyarrow (which ends the process on some damaged
    statistics) and without building the footer's values. The row groups
    are walked once (skipped over at each level first, then walked, they
    took six times one skip's time: 130 ms for a 21 KB footer)."""
    said: dict[bytes, bytes] = {}
    columns: set[int] = set()

    def key_value(at: int, depth: int) -> int:
        pair: dict[int, bytes] = {}

        def on(fid: int, kind: int, start: int, d: int) -> int:
            if kind != _BINARY:
                return -1
            end = _skip(footer, start, kind, d)
            pair[fid] = footer[start:end]
            return end
        end = _walk(footer, at, on, depth)
        if 1 in pair:
            said[_binary(pair[1])] = _binary(pair.get(2, b"\x00"))
        return end

    def chunk(index: int, at: int, depth: int) -> int:
        decided = [False]  # by the chunk's first metadata struct, as ever

        def on(fid: int, kind: int, start: int, d: int) -> int:
            if fid != _META_DATA or kind != _STRUCT or decided[0]:
                return -1
            decided[0] = True
            end, floats = _float_min_max(footer, start, d + 1)
            if floats:
                columns.add(index)
            return end
        return _walk(footer, at, on, depth)

    def group(fid: int, kind: int, start: int, depth: int) -> int:
        if fid == _COLUMNS and kind == _LIST:
            return _each_struct(footer, start, lambda i, at: chunk(i, at, depth + 2))
        return -1

    def top(fid: int, kind: int, start: int, depth: int) -> int:
        if fid == _KEY_VALUE and kind == _LIST:
            return _each_struct(footer, start, lambda i, at: key_value(at, depth + 2))
        if fid == _ROW_GROUPS and kind == _LIST:
            return _each_struct(footer, start,
                                lambda i, at: _walk(footer, at, group, depth + 2))
        return -1

    _walk(footer, 0, top)
    return said, columns


# visit(field id, type, value start, depth) -> the position after the value
# it walked, or -1 when it did not walk it: see _walk.
Visit = Callable[[int, int, int, int], int]


def _walk(buf: bytes, pos: int, visit: Visit, depth: int = 0) -> int:
    """The struct at `pos`, each field to `visit`; the position after it.
    The fields `visit` does not walk are skipped. `depth`: of the fields'
    values, as `_skip` counts it from the footer's top."""
    last = 0
    while True:
        kind, fid, start = _field(buf, pos, last)
        if kind == _STOP:
            return start
        last = fid
        end = visit(fid, kind, start, depth)
        pos = end if end >= 0 else _skip(buf, start, kind, depth)


def _each_struct(buf: bytes, start: int, each: Callable[[int, int], int]) -> int:
    """Each struct of the list at `start` to `each` (index, position ->
    position after it); the position after the list."""
    size, elem, pos = _list_head(buf, start)
    if elem != _STRUCT:
        raise FooterError("a list holds no structs")
    _within(buf, pos + size)  # every element takes a byte at least
    for i in range(size):
        pos = each(i, pos)
    return pos


def _binary(raw: bytes) -> bytes:
    size, pos = _varint(raw, 0)
    return raw[pos:pos + size]


def _float_min_max(footer: bytes, meta: int, depth: int) -> tuple[int, bool]:
    """The position after the ColumnMetaData at `meta` (its fields' values at
    `depth`), and whether it is a FLOAT or DOUBLE with a min and a max."""
    kind: list[int | None] = [None]
    stats: list[set[int]] = [set()]

    def on(fid: int, k: int, start: int, d: int) -> int:
        if fid == _TYPE and k == _I32:
            kind[0] = _zigzag(_varint(footer, start)[0])
        elif fid == _STATISTICS and k == _STRUCT:
            ids: set[int] = set()

            def note(f: int, k: int, s: int, d: int) -> int:
                ids.add(f)
                return -1
            end = _walk(footer, start, note, d + 1)
            stats[0] = ids
            return end
        return -1

    end = _walk(footer, meta, on, depth)
    floats = kind[0] in _FLOAT_TYPES and any(a in stats[0] and b in stats[0] for a, b in _MIN_MAX)
    return end, floats

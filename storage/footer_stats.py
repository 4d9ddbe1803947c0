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

# on_field(field id, type, value start, value end, out) -> keep the field: see _struct.
OnField = Callable[[int, int, int, int, bytearray], bool]
Each = Callable[[int, int, bytearray], int]  # (index, position, out) -> position after

# Compact protocol types.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = \
    range(13)
_FIXED = {_BYTE: 1, _DOUBLE: 8}
# Field ids on the way to a column chunk's statistics.
_ROW_GROUPS, _COLUMNS, _META_DATA, _STATISTICS = 4, 1, 3, 12
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


def _struct(buf: bytes, pos: int, out: bytearray, on_field: OnField) -> int:
    """Copy the struct at `pos` into `out`; the position after it. Each
    field goes to `on_field`, which says whether it is kept, and may write
    the value as it should be into the bytearray it is given (left empty:
    the value is copied as it is)."""
    last_in = last_out = 0
    while True:
        kind, fid, vpos = _field(buf, pos, last_in)
        if kind == _STOP:
            out.append(_STOP)
            return vpos
        last_in = fid
        end = _skip(buf, vpos, kind)
        part = bytearray()
        keep = on_field(fid, kind, vpos, end, part)
        if keep:
            _put_field(out, kind, fid, last_out)
            out += part if part else buf[vpos:end]
            last_out = fid
        pos = end


def without_statistics(footer: bytes, columns: set[int]) -> bytes:
    """`footer` (a FileMetaData) with the statistics of the leaf columns at
    the indices `columns` taken out of every row group."""

    def column_chunk(index: int) -> OnField:
        def on(fid: int, kind: int, start: int, end: int, out: bytearray) -> bool:
            if fid == _META_DATA and kind == _STRUCT and index in columns:
                _struct(footer, start, out, lambda f, k, s, e, o: f != _STATISTICS)
            return True
        return on

    def row_group(fid: int, kind: int, start: int, end: int, out: bytearray) -> bool:
        if fid == _COLUMNS and kind == _LIST:
            _list(start, out, lambda i, s, o: _struct(footer, s, o, column_chunk(i)))
        return True

    def file_meta(fid: int, kind: int, start: int, end: int, out: bytearray) -> bool:
        if fid == _ROW_GROUPS and kind == _LIST:
            _list(start, out, lambda i, s, o: _struct(footer, s, o, row_group))
        return True

    def _list(start: int, out: bytearray, each: Each) -> None:
        size, elem, pos = _list_head(footer, start)
        if elem != _STRUCT:
            raise FooterError("a list of row groups or column chunks holds no structs")
        out += footer[start:pos]
        for i in range(size):
            pos = each(i, pos, out)

    out = bytearray()
    end = _struct(footer, 0, out, file_meta)
    if end != len(footer):
        raise FooterError("bytes after the footer's struct")
    return bytes(out)

"""A Parquet footer as an attacker edits it: Thrift's compact protocol read
into fields (id, type, value) and written back (test helper; Cairn itself
only reads footers, storage/backup/footer_guard.py)."""

from __future__ import annotations

import struct
from typing import Any

Field = list[Any]  # [field id, Thrift type, value]


class _In:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1]

    def varint(self) -> int:
        shift = value = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (1, 2):
            return kind == 1
        if kind == 3:
            return struct.unpack("b", bytes([self.byte()]))[0]
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.at += 8
            return struct.unpack("<d", self.data[self.at - 8:self.at])[0]
        if kind == 8:
            n = self.varint()
            self.at += n
            return self.data[self.at - n:self.at]
        if kind in (9, 10):
            head = self.byte()
            n, element = head >> 4, head & 0x0F
            n = self.varint() if n == 15 else n
            if element in (1, 2):
                return (element, [self.byte() == 1 for _ in range(n)])
            return (element, [self.value(element) for _ in range(n)])
        if kind == 12:
            return self.struct()
        raise ValueError(f"type {kind}")

    def struct(self) -> list[Field]:
        out: list[Field] = []
        last = 0
        while (head := self.byte()) != 0:
            kind, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self.zigzag()
            out.append([last, kind, self.value(kind)])
        return out


def _out(fields: list[Field]) -> bytes:
    o = bytearray()

    def varint(v: int) -> None:
        while v >= 0x80:
            o.append((v & 0x7F) | 0x80)
            v >>= 7
        o.append(v)

    def value(kind: int, v: Any) -> None:
        if kind == 3:
            o.extend(struct.pack("b", v))
        elif kind in (4, 5, 6):
            varint((v << 1) ^ (v >> 63))
        elif kind == 7:
            o.extend(struct.pack("<d", v))
        elif kind == 8:
            varint(len(v))
            o.extend(v)
        elif kind in (9, 10):
            element, items = v
            o.append((len(items) << 4 | element) if len(items) < 15 else (0xF0 | element))
            if len(items) >= 15:
                varint(len(items))
            for item in items:
                if element in (1, 2):
                    o.append(1 if item else 2)
                else:
                    value(element, item)
        elif kind == 12:
            o.extend(_out(v))

    last = 0
    for fid, kind, v in sorted(fields, key=lambda f: f[0]):
        wire = (1 if v else 2) if kind in (1, 2) else kind
        if 0 < fid - last <= 15:
            o.append((fid - last) << 4 | wire)
        else:
            o.append(wire)
            varint((fid << 1) ^ (fid >> 63))
        last = fid
        if kind not in (1, 2):
            value(kind, v)
    o.append(0)
    return bytes(o)


def get(fields: list[Field], fid: int) -> Any:
    return next(f[2] for f in fields if f[0] == fid)


def put(fields: list[Field], fid: int, kind: int, value: Any) -> None:
    fields[:] = [f for f in fields if f[0] != fid] + [[fid, kind, value]]


def edit(data: bytes, change: Any) -> bytes:
    """The Parquet file `data` with its footer's FileMetaData fields passed
    through `change(fields)` (in place)."""
    n = int.from_bytes(data[-8:-4], "little")
    body, meta = data[:-8 - n], _In(data[-8 - n:-8]).struct()
    change(meta)
    footer = _out(meta)
    return body + footer + len(footer).to_bytes(4, "little") + b"PAR1"


def chunk_meta(meta: list[Field], group: int, column: int) -> list[Field]:
    """ColumnMetaData of one column chunk (FileMetaData.row_groups[g].columns[c].meta_data)."""
    chunks = get(get(meta, 4)[1][group], 1)[1]
    return get(chunks[column], 3)  # type: ignore[no-any-return]


def edit_page_header(data: bytes, offset: int, change: Any) -> bytes:
    """The Parquet file `data` with the Thrift PageHeader at `offset` passed
    through `change(fields)` (in place); its encoded length must not change."""
    reader = _In(data)
    reader.at = offset
    fields = reader.struct()
    length = reader.at - offset
    change(fields)
    header = _out(fields)
    assert len(header) == length, (len(header), length)
    return data[:offset] + header + data[offset + length:]

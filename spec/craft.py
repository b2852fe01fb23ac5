#!/usr/bin/env python3
"""Crafted recovery directories, encoded from docs/FORMAT.md alone, for the corners of the
format a generated crash state never reaches: padding, odd fragment cuts, optional and unknown
record types, flags per policy, damage followed by valid records, short and empty segments.

Usage:
    python3 spec/craft.py OUT_DIR        writes OUT_DIR/<case>/ for every case and prints one
                                         JSON line per case: {"case", "doc"} where "doc" is
                                         what FORMAT.md says a reader must make of it.

Each case directory holds image.img and journal/seg-*.wal. The encoder shares nothing with the
engine (nor with fastrec_spec.py's decoding, apart from the CRC function).
"""

import json
import os
import struct
import sys

# A bytecode cache would leave an untracked directory beside the scripts.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastrec_spec import crc32c  # noqa: E402

IMAGE_BS = 4096
IMAGE_BLOCKS = 64
INODES = 64
IMAGE_ID = 0x1234_5678_9ABC_DEF0
DATA_START = 4  # block bitmap 1..2, inode bitmap 2..3, orphan bitmap 3..4 for this geometry
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
HAS_UNDO, COMPENSATION, FULL_BLOCK = 1, 2, 4


def image_bytes():
    sb = bytearray(128)
    struct.pack_into("<8sIIQQQ", sb, 0, b"FRECIMG1", 1, IMAGE_BS, IMAGE_BLOCKS, INODES, IMAGE_ID)
    struct.pack_into("<QQQQQQ", sb, 40, 1, 2, 2, 3, 3, 4)
    struct.pack_into("<I", sb, 124, crc32c(bytes(sb[:124])))
    return bytes(sb) + bytes(IMAGE_BS * IMAGE_BLOCKS - 128)


def record(rtype, body, lsn, txid, flags=0, reserved=0):
    head = struct.pack("<BBHIQQ", rtype, flags, reserved, len(body), lsn, txid)
    crc = crc32c(body, crc32c(head))
    return head + struct.pack("<I", crc) + body


def fragment(salt, kind, payload, reserved=0):
    pre = struct.pack("<QHBB", salt, len(payload), kind, 0)
    crc = crc32c(payload, crc32c(pre))
    return struct.pack("<IHBB", crc, len(payload), kind, reserved) + payload


class Segment:
    def __init__(self, seq, first_lsn, jbs, blocks, steal, salt):
        self.seq = seq
        self.jbs = jbs
        self.blocks = blocks
        self.salt = salt
        flags = 1 if steal else 0
        h = bytearray(64)
        struct.pack_into("<8sHHIQQQQII", h, 0, b"FRECJNL1", 1, flags, jbs, seq, salt, IMAGE_ID,
                         first_lsn, IMAGE_BS, blocks)
        struct.pack_into("<I", h, 60, crc32c(bytes(h[:60])))
        self.data = bytearray(h) + bytearray(jbs - 64)

    def room(self):
        return (1 + self.blocks) * self.jbs - len(self.data)

    def pad_if_needed(self):
        rem = self.jbs - len(self.data) % self.jbs
        if rem <= 8:
            self.data += bytes(rem)

    def fits(self, rec_len):
        """Whether a record of rec_len bytes fits, cut as the writer cuts it."""
        pos = len(self.data)
        end = (1 + self.blocks) * self.jbs
        left = rec_len
        while left:
            rem = self.jbs - pos % self.jbs
            if rem <= 8:
                pos += rem
                continue
            if pos >= end:
                return False
            n = min(left, rem - 8)
            pos += 8 + n
            left -= n
        return pos <= end


class Journal:
    def __init__(self, jbs=4096, blocks=8, steal=False):
        self.jbs = jbs
        self.blocks = blocks
        self.steal = steal
        self.segs = []
        self.lsn = 1
        self.new_segment()

    def new_segment(self):
        seq = len(self.segs) + 1
        self.segs.append(Segment(seq, self.lsn, self.jbs, self.blocks, self.steal, 0x5A17_0000 + seq * 7919))

    @property
    def seg(self):
        return self.segs[-1]

    def add(self, rec, cut=None):
        """Appends a record, cut into fragments at block ends (or at the payload sizes in cut)."""
        if not self.seg.fits(len(rec)):
            self.new_segment()
        s = self.seg
        pieces = []
        pos = 0
        sizes = list(cut or [])
        while pos < len(rec):
            s.pad_if_needed()
            rem = s.jbs - len(s.data) % s.jbs
            n = min(len(rec) - pos, rem - 8)
            if sizes:
                n = min(n, sizes.pop(0))
            pieces.append(rec[pos : pos + n])
            pos += n
            last = pos == len(rec)
            kind = FULL if len(pieces) == 1 and last else FIRST if len(pieces) == 1 else LAST if last else MIDDLE
            s.data += fragment(s.salt, kind, pieces[-1])
        self.lsn += 1

    def write(self, rtype, body, txid=1, flags=0, **kw):
        self.add(record(rtype, body, self.lsn, txid, flags), **kw)

    def save(self, d):
        os.makedirs(os.path.join(d, "journal"), exist_ok=True)
        with open(os.path.join(d, "image.img"), "wb") as f:
            f.write(image_bytes())
        for s in self.segs:
            with open(os.path.join(d, "journal", "seg-%016x.wal" % s.seq), "wb") as f:
                f.write(bytes(s.data))


def write_body(block, offset, redo, undo=None):
    return struct.pack("<QII", block, offset, len(redo)) + redo + (undo or b"")


def bit_body(target, index):
    return struct.pack("<B7xQ", target, index)


def count_body(n, pad=0):
    return struct.pack("<II", n, pad)


def copy_body(src, dst, so, do, n, undo=None, pad=0):
    return struct.pack("<QQIIII", src, dst, so, do, n, pad) + (undo or b"")


def txn(j, txid, writes=2, size=100, steal=None):
    """A small committed transaction."""
    steal = j.steal if steal is None else steal
    for i in range(writes):
        redo = bytes([txid & 0xFF, i]) * (size // 2)
        j.write(1, write_body(DATA_START + (txid + i) % 40, 8 * i, redo, bytes(len(redo)) if steal else None),
                txid, HAS_UNDO if steal else 0)
    j.write(7, count_body(writes), txid)


def base(**kw):
    j = Journal(**kw)
    for t in range(1, 6):
        txn(j, t)
    return j


CASES = []


def case(doc):
    def wrap(fn):
        CASES.append((fn.__name__, doc, fn))
        return fn

    return wrap


@case("clean end after every record type, fragments cut at block ends")
def every_type(d):
    j = Journal(steal=True)
    txn(j, 1)
    j.write(1, write_body(10, 0, b"\xaa" * IMAGE_BS, b"\x00" * IMAGE_BS), 2, HAS_UNDO | FULL_BLOCK)
    j.write(1, write_body(11, 5, b"\xbb" * 7), 2, COMPENSATION)
    j.write(2, bit_body(0, 12), 2)
    j.write(3, bit_body(1, 3), 2, COMPENSATION)
    j.write(4, struct.pack("<Q", 5), 2)
    j.write(5, struct.pack("<Q", 5), 2, COMPENSATION)
    j.write(6, struct.pack("<Q", 13), 2)
    j.write(9, copy_body(10, 14, 3, 9, 20, b"\x00" * 20), 2, HAS_UNDO)
    j.write(7, count_body(8), 2)
    j.write(8, count_body(0), 3)
    for t in range(4, 40):
        txn(j, t, writes=3, size=700)
    j.save(d)


@case("a record cut into 1-byte fragments is one record")
def tiny_fragments(d):
    j = base()
    j.write(1, write_body(20, 0, b"\x11" * 40), 9, cut=[1] * 200)
    j.write(7, count_body(1), 9)
    j.save(d)


@case("8 or fewer bytes left in a block are zero padding; 9 left take a 1-byte fragment")
def padding_sizes(d):
    j = Journal()
    for want in (9, 8, 1, 10, 16, 17, 0):
        s = j.seg
        while True:
            s.pad_if_needed()
            rem = s.jbs - len(s.data) % s.jbs
            if rem >= want + 8 + 45:
                break
            j.write(7, count_body(0), 50)
        body_len = rem - want - 8 - 28 - 16
        j.write(1, write_body(DATA_START, 0, b"\x22" * body_len), 50 + want)
        assert s.jbs - len(s.data) % s.jbs == want or (want == 0 and len(s.data) % s.jbs == 0)
        j.write(7, count_body(1), 50 + want)
    j.save(d)


@case("padding (8 or fewer bytes at a block end) is zero: non-zero padding is damage")
def nonzero_padding(d):
    j = Journal()
    s = j.seg
    rem = s.jbs - len(s.data) % s.jbs
    body_len = rem - 5 - 8 - 28 - 16
    j.write(1, write_body(DATA_START, 0, b"\x33" * body_len), 1)
    assert s.jbs - len(s.data) % s.jbs == 5
    s.data += b"\x01\x02\x03\x04\x05"
    j.write(7, count_body(1), 1)
    txn(j, 2)
    j.save(d)


@case("the rest of block 0 after the 64-byte segment header is zero")
def header_block_not_zero(d):
    j = base()
    j.segs[0].data[100] = 0x7F
    j.save(d)


@case("steal segment: a WRITE that is not a compensation record must carry HAS_UNDO")
def steal_write_without_undo(d):
    j = base(steal=True)
    j.write(1, write_body(30, 0, b"\x44" * 10), 77)
    j.write(7, count_body(1), 77)
    txn(j, 78)
    j.save(d)


@case("no-steal segment: a WRITE with HAS_UNDO (the document does not forbid it)")
def nosteal_write_with_undo(d):
    j = base()
    j.write(1, write_body(30, 0, b"\x44" * 10, b"\x00" * 10), 77, HAS_UNDO)
    j.write(7, count_body(1), 77)
    txn(j, 78)
    j.save(d)


@case("FULL_BLOCK write with offset 0 and len != image block size is damage")
def full_block_wrong_len(d):
    j = base()
    j.write(1, write_body(30, 0, b"\x44" * 10), 77, FULL_BLOCK)
    j.write(7, count_body(1), 77)
    txn(j, 78)
    j.save(d)


@case("a write of exactly one image block without FULL_BLOCK (the document does not forbid it)")
def whole_block_without_flag(d):
    j = base()
    j.write(1, write_body(30, 0, b"\x45" * IMAGE_BS), 77)
    j.write(7, count_body(1), 77)
    j.save(d)


@case("an optional record type (0x80..0xFF) is skipped and counted, not damage")
def optional_type(d):
    j = base()
    j.write(0x80, b"\x01\x02\x03", 60)
    j.write(0xFF, b"", 61, flags=0x7)
    txn(j, 62)
    j.save(d)


@case("an unknown mandatory type followed by valid records is MidJournalCorruption")
def unknown_type_mid(d):
    j = base()
    j.write(10, b"\x00" * 8, 60)
    txn(j, 62)
    j.save(d)


@case("an unknown mandatory type with nothing valid after it is a torn tail (cut)")
def unknown_type_tail(d):
    j = base()
    j.write(0x7F, b"\x00" * 8, 60)
    j.save(d)


@case("a record whose LSN skips one, followed by valid records, is MidJournalCorruption")
def lsn_gap_mid(d):
    j = base()
    j.lsn += 1
    txn(j, 62)
    j.save(d)


@case("a fragment with a good checksum and reserved byte != 0 is damage")
def fragment_reserved(d):
    j = base()
    s = j.seg
    s.data += fragment(s.salt, FULL, record(7, count_body(0), j.lsn, 70), reserved=1)
    j.lsn += 1
    txn(j, 71)
    j.save(d)


@case("a record header with reserved != 0 and a good checksum is damage")
def record_reserved(d):
    j = base()
    j.add(record(7, count_body(0), j.lsn, 70, reserved=1))
    txn(j, 71)
    j.save(d)


@case("COMMIT's 4 zero bytes are checked")
def commit_padding(d):
    j = base()
    j.write(7, count_body(0, pad=1), 70)
    txn(j, 71)
    j.save(d)


@case("ALLOC's 7 zero bytes after the target are checked (the table says '7 zero bytes')")
def alloc_padding(d):
    j = base()
    body = bytearray(bit_body(0, 12))
    body[3] = 1
    j.write(2, bytes(body), 70)
    j.write(7, count_body(1), 70)
    txn(j, 71)
    j.save(d)


@case("ALLOC target other than 0 or 1 is damage")
def alloc_target(d):
    j = base()
    j.write(2, bit_body(2, 12), 70)
    j.write(7, count_body(1), 70)
    txn(j, 71)
    j.save(d)


@case("COPY's 4 zero bytes are checked")
def copy_padding(d):
    j = base()
    j.write(9, copy_body(10, 11, 0, 0, 8, pad=3), 70)
    j.write(7, count_body(1), 70)
    txn(j, 71)
    j.save(d)


@case("txid 0 is damage")
def txid_zero(d):
    j = base()
    j.write(7, count_body(0), 0)
    txn(j, 71)
    j.save(d)


@case("a flag a type does not allow (REVOKE with COMPENSATION) is damage")
def revoke_flag(d):
    j = base()
    j.write(6, struct.pack("<Q", 20), 70, COMPENSATION)
    j.write(7, count_body(1), 70)
    txn(j, 71)
    j.save(d)


@case("a FULL fragment inside a record (after FIRST) is damage")
def full_inside_record(d):
    j = base()
    s = j.seg
    rec = record(7, count_body(0), j.lsn, 70)
    s.data += fragment(s.salt, FIRST, rec[:10])
    s.data += fragment(s.salt, FULL, record(7, count_body(0), j.lsn, 71))
    j.lsn += 1
    txn(j, 72)
    j.save(d)


@case("a record cut off by the end of the last segment is a torn tail")
def cut_record_eof(d):
    j = base()
    s = j.seg
    rec = record(1, write_body(20, 0, b"\x55" * 300), j.lsn, 70)
    s.data += fragment(s.salt, FIRST, rec[:100])
    j.save(d)


@case("a partial fragment header (3 non-zero bytes) at the end of the last segment: torn tail")
def partial_header_eof(d):
    j = base()
    j.seg.data += b"\x01\x02\x03"
    j.save(d)


@case("a partial fragment header of 3 zero bytes at the end of the last segment")
def partial_zero_header_eof(d):
    j = base()
    j.seg.data += b"\x00\x00\x00"
    j.save(d)


@case("zero fill followed by valid records in a later block is MidJournalCorruption")
def zero_hole(d):
    j = base()
    s = j.seg
    s.data += bytes(s.jbs - len(s.data) % s.jbs)
    txn(j, 80)
    j.save(d)


@case("a non-last segment that ends with zero fill before the next segment (Section 6: zero "
      "fill with valid fragments after it is an error)")
def zero_fill_then_next_segment(d):
    j = base()
    s = j.seg
    s.data += bytes(100)
    j.new_segment()
    txn(j, 80)
    j.save(d)


@case("a segment holding only its header block, then the next segment")
def empty_middle_segment(d):
    j = base()
    j.new_segment()
    j.new_segment()
    txn(j, 80)
    j.save(d)


@case("a last segment shorter than one journal block (truncated header) is ignored")
def truncated_last_segment(d):
    j = base()
    j.new_segment()
    j.seg.data = j.seg.data[:100]
    j.save(d)


@case("a last segment of exactly one journal block (header only) is an empty segment")
def header_only_last_segment(d):
    j = base()
    j.new_segment()
    j.save(d)


@case("a segment whose first_lsn differs from the LSN that follows the previous segment")
def segment_first_lsn_wrong(d):
    j = base()
    j.lsn += 3
    j.new_segment()
    j.lsn -= 3
    txn(j, 80)
    j.save(d)


@case("the first record of a segment has an LSN other than the header's first_lsn")
def first_record_lsn_not_header(d):
    j = base()
    j.new_segment()
    s = j.seg
    struct.pack_into("<Q", s.data, 40, j.lsn + 1)
    struct.pack_into("<I", s.data, 60, crc32c(bytes(s.data[:60])))
    txn(j, 80)
    j.save(d)


@case("a fragment whose length runs past the end of the file (inside its block)")
def fragment_past_eof(d):
    j = base()
    s = j.seg
    frag = fragment(s.salt, FULL, record(7, count_body(0), j.lsn, 70))
    s.data += frag[:-5]
    j.save(d)


@case("damage in the last block whose length field points inside the block, with a valid "
      "record after it in the same block: MidJournalCorruption")
def damage_then_valid_in_block(d):
    j = base()
    s = j.seg
    frag = bytearray(fragment(s.salt, FULL, record(7, count_body(0), j.lsn, 70)))
    frag[20] ^= 0xFF
    s.data += frag
    j.lsn += 1
    txn(j, 71)
    j.save(d)


@case("damage whose length field is wrong, with valid records later in the same block only: "
      "indistinguishable from a torn write, cut")
def damage_bad_length_then_valid(d):
    j = base()
    s = j.seg
    frag = bytearray(fragment(s.salt, FULL, record(7, count_body(0), j.lsn, 70)))
    struct.pack_into("<H", frag, 4, 3)
    s.data += frag
    j.lsn += 1
    txn(j, 71)
    j.save(d)


@case("a valid MIDDLE/LAST (continuation) after damage does not count as valid after it")
def continuation_after_damage(d):
    j = base()
    s = j.seg
    rec = record(1, write_body(20, 0, b"\x66" * 3000), j.lsn, 70)
    bad = bytearray(fragment(s.salt, FIRST, rec[:1000]))
    bad[30] ^= 1
    s.data += bad
    s.data += fragment(s.salt, MIDDLE, rec[1000:2000])
    s.data += fragment(s.salt, LAST, rec[2000:])
    j.save(d)


@case("a record over three blocks whose LAST fragment is torn: the cut is at its FIRST fragment")
def torn_last_fragment(d):
    j = base()
    s = j.seg
    rec = record(1, write_body(20, 0, b"\x66" * 4096), j.lsn, 70)
    j.add(rec)
    s.data[-3] ^= 0x40
    j.save(d)


@case("a MIDDLE fragment damaged, valid records after the record: MidJournalCorruption, "
      "found by walking on from the fragment after the damaged one")
def damaged_middle_then_valid(d):
    j = base()
    s = j.seg
    start = len(s.data)
    rec = record(1, write_body(20, 0, b"\x67" * 6000), j.lsn, 70)
    j.add(rec)
    s.data[start + 4096 - start % 4096 + 100] ^= 0x01  # inside the MIDDLE (or LAST) fragment
    j.write(7, count_body(1), 70)
    j.save(d)


@case("a record longer than RECORD_LEN_MAX is damage")
def record_too_long(d):
    j = Journal(jbs=65536, blocks=8)
    txn(j, 1)
    body = write_body(20, 0, b"\x77" * 65536, b"\x00" * 65536) + b"\x00"
    j.add(record(1, body, j.lsn, 70, HAS_UNDO))
    j.save(d)


@case("WRITE len 0 is damage")
def write_len_zero(d):
    j = base()
    j.write(1, write_body(20, 0, b""), 70)
    j.write(7, count_body(1), 70)
    txn(j, 71)
    j.save(d)


@case("a segment file longer than (1 + segment_blocks) * block_size is refused")
def segment_too_long(d):
    j = Journal(blocks=2)
    txn(j, 1)
    j.seg.data += bytes(3 * j.jbs - len(j.seg.data) + 10)
    j.save(d)


@case("a FIRST fragment followed by zero fill: the unfinished record is not durable; zero fill "
      "with nothing valid after is a clean end (Section 6), in absolute mode too")
def first_then_zero(d):
    j = base()
    s = j.seg
    rec = record(1, write_body(20, 0, b"\x55" * 300), j.lsn, 70)
    s.data += fragment(s.salt, FIRST, rec[:100])
    s.data += bytes(64)
    j.save(d)


@case("a non-last segment that ends with garbage before the next segment: damage with valid "
      "fragments after it is MidJournalCorruption")
def garbage_then_next_segment(d):
    j = base()
    j.seg.data += b"\xde\xad\xbe\xef" * 25
    j.new_segment()
    txn(j, 80)
    j.save(d)


@case("a last segment holding only its header, whose first_lsn skips one LSN")
def empty_last_segment_lsn_gap(d):
    j = base()
    j.lsn += 1
    j.new_segment()
    j.save(d)


@case("segment 2 continues at the wrong LSN (one lost between segments), with records")
def segment_lsn_gap(d):
    j = base()
    j.lsn += 1
    j.new_segment()
    txn(j, 80)
    j.save(d)


@case("a bad field in the second fragment of a record (COMMIT padding of a record cut in two)")
def field_error_second_fragment(d):
    j = base()
    j.write(7, count_body(0, pad=9), 70, cut=[30])
    txn(j, 71)
    j.save(d)


@case("records that decode but cannot be applied (Section 4 semantic validity): InvalidRecord, "
      "not damage")
def semantic_invalid(d):
    j = Journal(steal=True)
    u = b"\x00"
    j.write(1, write_body(1, 0, b"\x01" * 4, u * 4), 10, HAS_UNDO)  # bitmap block
    j.write(1, write_body(20, 4090, b"\x01" * 10, u * 10), 10, HAS_UNDO)  # past the block end
    j.write(1, write_body(20, 8, b"\x01" * 10), 10)  # steal without undo
    j.write(1, write_body(21, 0, b"\x01" * 10, u * 10), 10, HAS_UNDO | FULL_BLOCK)  # not a full block
    j.write(2, bit_body(0, 2), 10)  # ALLOC of a metadata block
    j.write(2, bit_body(1, INODES), 10)  # beyond the inode bitmap
    j.write(4, struct.pack("<Q", INODES + 1), 10)
    j.write(6, struct.pack("<Q", 0), 10)  # REVOKE of the superblock
    j.write(9, copy_body(22, 22, 0, 0, 8, u * 8), 10, HAS_UNDO)  # src == dst
    j.write(9, copy_body(22, 23, 4092, 0, 8, u * 8), 10, HAS_UNDO)  # past the block end
    j.write(7, count_body(10), 10)
    j.write(1, write_body(25, 0, b"\x01" * 4, u * 4), 11, HAS_UNDO)
    j.write(7, count_body(5), 11)  # wrong count
    txn(j, 14)
    j.save(d)


@case("an optional record inside a transaction: does its COMMIT count it?")
def optional_in_txn(d):
    j = base()
    j.write(1, write_body(20, 0, b"\x01" * 8), 90)
    j.write(0x90, b"\x01", 90)
    j.write(7, count_body(1), 90)
    j.write(1, write_body(21, 0, b"\x01" * 8), 91)
    j.write(0x90, b"\x01", 91)
    j.write(7, count_body(2), 91)
    j.save(d)


@case("a record of a transaction after its COMMIT is an InvalidRecord (Section 4)")
def record_after_commit(d):
    j = base()
    j.write(1, write_body(20, 0, b"\x01" * 8), 90)
    j.write(7, count_body(1), 90)
    j.write(1, write_body(21, 0, b"\x01" * 8), 90)
    txn(j, 91)
    j.save(d)


@case("a record of a transaction after its ABORT is an InvalidRecord (Section 4)")
def record_after_abort(d):
    j = base()
    j.write(1, write_body(20, 0, b"\x01" * 8), 90)
    j.write(8, count_body(1), 90)
    j.write(7, count_body(2), 90)
    txn(j, 91)
    j.save(d)


@case("a record after the COMMIT of a transaction that is a loser because of an invalid record "
      "(Section 4: a record after its COMMIT is an InvalidRecord, losers not excepted)")
def stray_after_loser(d):
    j = base()
    j.write(1, write_body(2, 0, b"\x01" * 8), 90)  # a bitmap block: invalid
    j.write(7, count_body(1), 90)
    j.write(1, write_body(21, 0, b"\x01" * 8), 90)
    txn(j, 91)
    j.save(d)


@case("a COPY reading a block at an LSN below a committed REVOKE of that block is an "
      "InvalidRecord (Section 4)")
def copy_below_committed_revoke(d):
    j = base()
    j.write(1, write_body(30, 0, b"\x01" * 8), 90)
    j.write(9, copy_body(30, 31, 0, 0, 8), 90)
    j.write(7, count_body(2), 90)
    j.write(6, struct.pack("<Q", 30), 91)
    j.write(7, count_body(1), 91)
    txn(j, 92)
    j.save(d)


@case("the last record of a segment torn, and the next segment's header (first_lsn one past "
      "the torn record) durable with no records: damage with nothing valid after, a torn tail")
def torn_record_then_new_segment(d):
    j = base()
    s = j.seg
    rec = record(1, write_body(20, 0, b"\x55" * 300), j.lsn, 70)
    frag = bytearray(fragment(s.salt, FULL, rec))
    s.data += frag[:200]
    j.lsn += 1
    j.new_segment()
    j.save(d)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    for name, doc, fn in CASES:
        fn(os.path.join(out, name))
        print(json.dumps({"case": name, "doc": doc}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Independent decoder of fastrec's on-disk format, written from docs/FORMAT.md alone.

It shares no code with the engine (and no third-party package): a format bug that the
engine's encoder and decoder share cancels out in every round trip, but not against a reader
built only from the document.

Usage:
    python3 spec/fastrec_spec.py DIR... [--mode tolerate-tail|absolute] [--bytes crc|hex]
                                        [--crc-literal]
    python3 spec/fastrec_spec.py --selftest

Prints one JSON object per line on stdout, each with a "what" key:
    image       the superblock (section 1)
    segment     one per journal segment file (section 2)
    record      one per durable record, in LSN order (sections 3-4)
    optional    an optional record of an unknown type, skipped (section 4)
    end         where the durable journal ends, why, and what the mode makes of it (section 6)
    checkpoint  one per checkpoint record file (section 7)
    pointer     the checkpoint pointer (section 7)
    selected    the checkpoint record recovery would start from (section 7)
    copylog     the copy log (section 9)
    marker      the recovered marker, compared with the journal as found (section 5)
    note        something the document leaves open, and what this decoder did
Byte strings are given as {"len": n, "crc32c": c} (or hex with --bytes hex). With several
directories, each one's lines come between {"what": "dir", "path": ...} and
{"what": "exit", "status": ...}.

Exit status: 0 when the directory decodes under the mode (a torn tail cut counts as decoded),
1 when the mode makes it an error, 2 on bad usage or an unreadable directory.
"""

import array
import json
import os
import re
import struct
import sys

# ---------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), from the standard definition: reflected polynomial 0x82F63B78, register
# preset to all ones, final complement. FORMAT.md says "as computed by the `crc32c` crate
# (initial value 0, no final masking)"; the crate's `crc32c_append(0, ..)` takes a *finished*
# CRC value as its seed, so its seed 0 is a preset register of all ones. --crc-literal reads the
# sentence literally instead (register 0, no final complement) to show what that would mean.

POLY = 0x82F63B78


def _tables():
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ t0[prev[i] & 0xFF] for i in range(256)])
    return tables


_T = _tables()
_LITTLE_Q = sys.byteorder == "little" and array.array("Q").itemsize == 8


def crc32c_register(reg, data):
    """Runs the raw reflected register over data (slicing by 8: the decoder's hot loop)."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T
    n = len(data)
    head = n - (n & 7)
    mv = memoryview(data)
    if head:
        if _LITTLE_Q:
            words = array.array("Q")
            words.frombytes(mv[:head])
        else:
            words = [w for (w,) in struct.iter_unpack("<Q", mv[:head])]
        for q in words:
            x = reg ^ q
            reg = (
                t7[x & 0xFF]
                ^ t6[(x >> 8) & 0xFF]
                ^ t5[(x >> 16) & 0xFF]
                ^ t4[(x >> 24) & 0xFF]
                ^ t3[(x >> 32) & 0xFF]
                ^ t2[(x >> 40) & 0xFF]
                ^ t1[(x >> 48) & 0xFF]
                ^ t0[x >> 56]
            )
    for b in mv[head:]:
        reg = t0[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


LITERAL = False


def crc32c(data, prev=0):
    """CRC-32C of data, continued from the finished CRC value prev (0 for a fresh one)."""
    if LITERAL:
        return crc32c_register(prev, data)
    return crc32c_register(prev ^ 0xFFFFFFFF, data) ^ 0xFFFFFFFF


def selftest():
    global LITERAL
    LITERAL = False
    ok = True
    checks = [
        ("crc32c(b'123456789') == 0xE3069283", crc32c(b"123456789") == 0xE3069283),
        ("crc32c(b'') == 0", crc32c(b"") == 0),
        ("crc32c(32 zero bytes) == 0x8A9136AA", crc32c(bytes(32)) == 0x8A9136AA),
        ("crc32c(32 0xFF bytes) == 0x62A8AB43", crc32c(b"\xff" * 32) == 0x62A8AB43),
        ("crc32c(bytes 0..31) == 0x46DD794E", crc32c(bytes(range(32))) == 0x46DD794E),
        ("append is continuation", crc32c(b"56789", crc32c(b"1234")) == 0xE3069283),
        ("slicing == bytewise", _bytewise(bytes(range(256)) * 3) == crc32c(bytes(range(256)) * 3)),
    ]
    LITERAL = True
    literal = crc32c(b"123456789")
    LITERAL = False
    for name, good in checks:
        print(("ok   " if good else "FAIL ") + name)
        ok = ok and good
    print("note literal reading of FORMAT.md (register 0, no final xor): crc('123456789') = 0x%08X" % literal)
    return 0 if ok else 1


def _bytewise(data):
    reg = 0xFFFFFFFF
    for b in data:
        reg = _T[0][(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Output

BYTES_MODE = "crc"
OUT = []


def emit(obj):
    OUT.append(json.dumps(obj, separators=(",", ":"), sort_keys=True))


def note(text, **kw):
    d = {"what": "note", "text": text}
    d.update(kw)
    emit(d)


def blob(b):
    if BYTES_MODE == "hex":
        return bytes(b).hex()
    return {"len": len(b), "crc32c": crc32c(b)}


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def is_pow2(x):
    return x > 0 and x & (x - 1) == 0


# ---------------------------------------------------------------------------------------------
# Section 1: the image superblock


def decode_image(path):
    try:
        with open(path, "rb") as f:
            sb = f.read(128)
            f.seek(0, os.SEEK_END)
            length = f.tell()
    except OSError as e:
        return {"what": "image", "valid": False, "error": "unreadable: %s" % e}
    out = {"what": "image", "file_len": length}
    if len(sb) < 128:
        out.update(valid=False, error="shorter than 128 bytes")
        return out
    fields = {
        "magic": sb[0:8].decode("latin-1"),
        "version": u32(sb, 8),
        "block_size": u32(sb, 12),
        "block_count": u64(sb, 16),
        "inode_count": u64(sb, 24),
        "image_id": u64(sb, 32),
        "block_bitmap_start": u64(sb, 40),
        "block_bitmap_end": u64(sb, 48),
        "inode_bitmap_start": u64(sb, 56),
        "inode_bitmap_end": u64(sb, 64),
        "orphan_bitmap_start": u64(sb, 72),
        "orphan_bitmap_end": u64(sb, 80),
        "crc32c": u32(sb, 124),
    }
    out.update(fields)
    errs = []
    if sb[0:8] != b"FRECIMG1":
        errs.append("magic")
    if fields["version"] != 1:
        errs.append("version")
    bs = fields["block_size"]
    if not (is_pow2(bs) and 512 <= bs <= 65536):
        errs.append("block_size")
    if any(sb[88:124]):
        errs.append("reserved not zero")
    if crc32c(sb[0:124]) != fields["crc32c"]:
        errs.append("crc32c")
    if fields["inode_count"] < 1:
        errs.append("inode_count")
    if bs and is_pow2(bs):
        per = 8 * bs
        bb = -(-fields["block_count"] // per)
        ib = -(-fields["inode_count"] // per)
        want = [1, 1 + bb, 1 + bb, 1 + bb + ib, 1 + bb + ib, 1 + bb + 2 * ib]
        got = [fields[k] for k in (
            "block_bitmap_start", "block_bitmap_end", "inode_bitmap_start",
            "inode_bitmap_end", "orphan_bitmap_start", "orphan_bitmap_end")]
        if want != got:
            errs.append("region table %s, derived %s" % (got, want))
        if length != fields["block_count"] * bs:
            errs.append("file length %d != block_count * block_size" % length)
        out["first_data_block"] = fields["orphan_bitmap_end"]
        with open(path, "rb") as f:
            f.seek(128)
            rest = f.read(bs - 128)
        if any(rest):
            # Section 1 says the rest is zero but not that a reader refuses otherwise.
            out["note"] = "block 0 not zero after byte 128"
    out["valid"] = not errs
    if errs:
        out["error"] = "; ".join(errs)
    return out


# ---------------------------------------------------------------------------------------------
# Section 2: segments

SEG_NAME = re.compile(r"^seg-([0-9a-f]{16})\.wal$")
FOUR_GIB = 1 << 32


class Segment:
    def __init__(self, name, path, seq):
        self.name = name
        self.path = path
        self.seq = seq
        self.length = os.path.getsize(path)
        self.data = None
        self.hdr = None
        self.error = None
        self.truncated = False
        self.ignored = False
        self.note = None

    def load(self):
        if self.data is None:
            with open(self.path, "rb") as f:
                self.data = f.read()
        return self.data


def read_segment_header(seg, image, block_size_seen):
    """Fills seg.hdr or seg.error / seg.truncated."""
    with open(seg.path, "rb") as f:
        head = f.read(64)
    jbs = block_size_seen
    if jbs is None and len(head) >= 16:
        cand = u32(head, 12)
        if is_pow2(cand) and 4096 <= cand <= 1048576:
            jbs = cand
    if len(head) < 64 or seg.length < (jbs or 4096):
        seg.truncated = True
        seg.error = "truncated header (%d bytes)" % seg.length
        return
    h = {
        "magic": head[0:8].decode("latin-1"),
        "format_version": u16(head, 8),
        "flags": u16(head, 10),
        "block_size": u32(head, 12),
        "segment_seq": u64(head, 16),
        "salt": u64(head, 24),
        "image_id": u64(head, 32),
        "first_lsn": u64(head, 40),
        "image_block_size": u32(head, 48),
        "segment_blocks": u32(head, 52),
        "reserved": u32(head, 56),
        "crc32c": u32(head, 60),
    }
    seg.hdr = h
    errs = []
    if head[0:8] != b"FRECJNL1":
        errs.append("magic")
    if crc32c(head[0:60]) != h["crc32c"]:
        errs.append("crc32c")
    if h["format_version"] != 1:
        errs.append("format_version")
    # Bit 0: steal policy; bit 1: the writer uses sync markers (FORMAT.md sections 2 and 6).
    if h["flags"] & ~3:
        errs.append("flags")
    bs = h["block_size"]
    if not (is_pow2(bs) and 4096 <= bs <= 1048576):
        errs.append("block_size")
    elif block_size_seen is not None and bs != block_size_seen:
        errs.append("block_size differs from earlier segments")
    if h["segment_seq"] != seg.seq:
        errs.append("segment_seq %d != file name %d" % (h["segment_seq"], seg.seq))
    if h["first_lsn"] < 1:
        errs.append("first_lsn")
    if h["segment_blocks"] < 1 or (1 + h["segment_blocks"]) * bs > FOUR_GIB:
        errs.append("segment_blocks")
    if h["reserved"] != 0:
        errs.append("reserved")
    if image.get("valid"):
        if h["image_block_size"] != image["block_size"]:
            errs.append("image_block_size")
        if h["image_id"] != image["image_id"]:
            errs.append("image_id differs from the image's")
    if not errs and seg.length > (1 + h["segment_blocks"]) * bs:
        errs.append("file longer than (1 + segment_blocks) * block_size")
    if not errs:
        data = seg.load()
        if any(memoryview(data)[64:bs]):
            # Section 2 says the rest of block 0 is zero, not that a reader refuses otherwise
            # (the list of header errors names magic, checksum, version, flags and fields).
            seg.note = "block 0 not zero after byte 64"
    if errs:
        seg.error = "; ".join(errs)


# ---------------------------------------------------------------------------------------------
# Sections 3-4: fragments and records

FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
KIND_NAMES = {FULL: "FULL", FIRST: "FIRST", MIDDLE: "MIDDLE", LAST: "LAST"}
RECORD_LEN_MAX = 28 + 16 + 2 * 65536
BODY_LEN_MAX = 16 + 2 * 65536
HAS_UNDO, COMPENSATION, FULL_BLOCK = 1, 2, 4
TYPES = {
    1: ("WRITE", HAS_UNDO | COMPENSATION | FULL_BLOCK),
    2: ("ALLOC", COMPENSATION),
    3: ("FREE", COMPENSATION),
    4: ("ORPHAN_ADD", COMPENSATION),
    5: ("ORPHAN_REMOVE", COMPENSATION),
    6: ("REVOKE", 0),
    7: ("COMMIT", 0),
    8: ("ABORT", 0),
    9: ("COPY", HAS_UNDO),
}


class Damage(Exception):
    pass


def check_fragment(data, pos, block_end, salt):
    """Returns (length, kind, payload_end) of a valid fragment at pos, or raises Damage.
    Zero fill is reported by the caller before this is called."""
    if pos + 8 > len(data):
        raise Damage("fragment header cut off by the end of the file")
    crc, length, kind, reserved = struct.unpack_from("<IHBB", data, pos)
    if length < 1:
        raise Damage("fragment length 0")
    if pos + 8 + length > block_end:
        raise Damage("fragment overruns its block (length %d)" % length)
    if pos + 8 + length > len(data):
        raise Damage("fragment cut off by the end of the file")
    if kind not in KIND_NAMES:
        raise Damage("fragment kind %d" % kind)
    if reserved != 0:
        raise Damage("fragment reserved byte %d" % reserved)
    pre = struct.pack("<QHBB", salt, length, kind, 0)
    reg = crc32c(pre)
    if crc32c(memoryview(data)[pos + 8 : pos + 8 + length], reg) != crc:
        raise Damage("fragment checksum")
    return length, kind, pos + 8 + length


def length_points_inside(data, pos, block_end):
    """Whether a damaged fragment header's length field still points inside its block."""
    if pos + 8 > len(data):
        return False
    length = u16(data, pos + 4)
    return length >= 1 and pos + 8 + length <= block_end


def walk_finds_start(data, pos, jbs, salt):
    """Walks valid fragments from pos within its block; the offset of the first FULL or FIRST,
    or None."""
    block_end = (pos // jbs + 1) * jbs
    while True:
        if block_end - pos <= 8 or pos >= len(data):
            return None
        if not any(data[pos : pos + 8]):
            return None
        try:
            _length, kind, nxt = check_fragment(data, pos, block_end, salt)
        except Damage:
            return None
        if kind in (FULL, FIRST):
            return pos
        pos = nxt


def valid_after(segs, si, first_block, after_damaged):
    """Section 6's "valid after": where a valid FULL/FIRST starts after the stop point, in this
    or a later segment, or None. Walks from after_damaged (the fragment after the damaged one,
    when known), from every block of segment si from first_block on, and from the first data
    block of every later segment."""
    seg = segs[si]
    data = seg.load()
    jbs = seg.hdr["block_size"]
    salt = seg.hdr["salt"]
    if after_damaged is not None:
        at = walk_finds_start(data, after_damaged, jbs, salt)
        if at is not None:
            return {"segment": seg.seq, "offset": at}
    b = first_block
    while b * jbs < len(data):
        at = walk_finds_start(data, b * jbs, jbs, salt)
        if at is not None:
            return {"segment": seg.seq, "offset": at}
        b += 1
    for later in segs[si + 1 :]:
        if later.hdr is None or later.error:
            continue
        lbs = later.hdr["block_size"]
        at = walk_finds_start(later.load(), lbs, lbs, later.hdr["salt"])
        if at is not None:
            return {"segment": later.seq, "offset": at}
    return None


def decode_body(rtype, flags, body):
    """Fields of a record body, or raises Damage. rtype is a known type."""
    name, allowed = TYPES[rtype]
    if flags & ~allowed:
        raise Damage("%s flags 0x%02x not allowed" % (name, flags))
    f = {}
    n = len(body)
    if rtype == 1:
        if n < 16:
            raise Damage("WRITE body too short")
        block, offset, length = struct.unpack_from("<QII", body, 0)
        if not 1 <= length <= 65536:
            raise Damage("WRITE len %d" % length)
        undo = bool(flags & HAS_UNDO)
        if n != 16 + length * (2 if undo else 1):
            raise Damage("WRITE body_len %d for len %d" % (n, length))
        f.update(block=block, offset=offset, len=length, redo=blob(body[16 : 16 + length]),
                 undo=blob(body[16 + length :]) if undo else None)
    elif rtype in (2, 3):
        if n != 16:
            raise Damage("%s body_len %d" % (name, n))
        if body[0] not in (0, 1):
            raise Damage("%s target %d" % (name, body[0]))
        if any(body[1:8]):
            raise Damage("%s padding not zero" % name)
        f.update(target=body[0], index=u64(body, 8))
    elif rtype in (4, 5):
        if n != 8:
            raise Damage("%s body_len %d" % (name, n))
        f.update(inode=u64(body, 0))
    elif rtype == 6:
        if n != 8:
            raise Damage("REVOKE body_len %d" % n)
        f.update(block=u64(body, 0))
    elif rtype in (7, 8):
        if n != 8:
            raise Damage("%s body_len %d" % (name, n))
        if u32(body, 4) != 0:
            raise Damage("%s padding not zero" % name)
        f.update(records=u32(body, 0))
    elif rtype == 9:
        if n < 32:
            raise Damage("COPY body too short")
        src, dst, so, do, length, pad = struct.unpack_from("<QQIIII", body, 0)
        if not 1 <= length <= 65536:
            raise Damage("COPY len %d" % length)
        if pad != 0:
            raise Damage("COPY padding not zero")
        undo = bool(flags & HAS_UNDO)
        if n != 32 + (length if undo else 0):
            raise Damage("COPY body_len %d for len %d" % (n, length))
        f.update(src=src, dst=dst, src_offset=so, dst_offset=do, len=length,
                 undo=blob(body[32:]) if undo else None)
    return f


def decode_record(buf, expected_lsn):
    """Returns (fields dict, optional?) or raises Damage."""
    if len(buf) < 28:
        raise Damage("record shorter than its header")
    rtype, flags, reserved, body_len, lsn, txid, crc = struct.unpack_from("<BBHIQQI", buf, 0)
    if reserved != 0:
        raise Damage("record reserved field")
    if body_len > BODY_LEN_MAX:
        raise Damage("body_len %d" % body_len)
    if body_len != len(buf) - 28:
        raise Damage("body_len %d but %d bytes reassembled" % (body_len, len(buf) - 28))
    mv = memoryview(buf)
    if crc32c(mv[28:], crc32c(mv[0:24])) != crc:
        raise Damage("record checksum")
    if lsn != expected_lsn:
        raise Damage("LSN out of sequence: expected %d, found %d" % (expected_lsn, lsn))
    if txid == 0:
        raise Damage("txid 0")
    rec = {"lsn": lsn, "txid": txid, "type_code": rtype, "flags": flags,
           "body_len": body_len, "crc32c": crc}
    if rtype in TYPES:
        rec["type"] = TYPES[rtype][0]
        rec["fields"] = decode_body(rtype, flags, bytes(mv[28:]))
        return rec, False
    if rtype & 0x80:
        rec["type"] = "OPTIONAL"
        rec["body"] = blob(mv[28:])
        return rec, True
    raise Damage("unknown record type %d" % rtype)


def decode_journal(dirpath, image, mode, has_checkpoints):
    jdir = os.path.join(dirpath, "journal")
    try:
        names = sorted(os.listdir(jdir))
    except OSError as e:
        emit({"what": "end", "error": "no journal directory: %s" % e, "decoded": False})
        return False, None
    segs = []
    for n in names:
        m = SEG_NAME.match(n)
        if m and os.path.isfile(os.path.join(jdir, n)):
            segs.append(Segment(n, os.path.join(jdir, n), int(m.group(1), 16)))
    segs.sort(key=lambda s: s.seq)
    end = {"what": "end", "records": 0, "optional_records": 0, "first_lsn": 0, "last_lsn": 0}
    if not segs:
        # Section 2: the journal starts at segment 1; with no segment it does not start at all.
        end.update(reason="no segments", decoded=False, error="no journal segments", durable_end=None)
        emit(end)
        return False, segs
    errors = []
    if segs[0].seq != 1:
        if has_checkpoints:
            note("journal starts at segment %d; accepted because checkpoint records exist "
                 "(section 7: recycled segments)" % segs[0].seq)
        else:
            errors.append("journal starts at segment %d, not 1" % segs[0].seq)
    for a, b in zip(segs, segs[1:]):
        if b.seq != a.seq + 1:
            errors.append("gap between segments %d and %d" % (a.seq, b.seq))
    jbs = None
    for i, seg in enumerate(segs):
        read_segment_header(seg, image, jbs)
        last = i == len(segs) - 1
        if seg.truncated:
            if last and mode != "absolute":
                seg.ignored = True
            else:
                errors.append("segment %d: %s" % (seg.seq, seg.error))
        elif seg.error:
            errors.append("segment %d: %s" % (seg.seq, seg.error))
        elif jbs is None:
            jbs = seg.hdr["block_size"]
        d = {"what": "segment", "seq": seg.seq, "name": seg.name, "len": seg.length,
             "ignored": seg.ignored}
        if seg.hdr:
            d.update({k: v for k, v in seg.hdr.items() if k != "magic"})
            d["steal"] = bool(seg.hdr["flags"] & 1)
        if seg.error:
            d["error"] = seg.error
        if seg.note:
            d["note"] = seg.note
        emit(d)
    if errors:
        end.update(decoded=False, error="; ".join(errors), durable_end=None)
        emit(end)
        return False, segs

    live = [s for s in segs if not s.ignored]
    expected = live[0].hdr["first_lsn"] if live else 1
    if live and live[0].seq == 1 and expected != 1:
        errors.append("segment 1 first_lsn %d, not 1" % expected)
    records = 0
    optional = 0
    first_lsn = 0
    last_lsn = 0
    durable = None  # (seq, offset) just past the last durable record
    found = []
    stop = None
    for si, seg in enumerate(live):
        h = seg.hdr
        jbs = h["block_size"]
        if si > 0 and h["first_lsn"] != expected:
            # The header promises a first LSN the journal does not continue with: records were
            # lost between segments. Nothing of this segment is durable.
            stop = Stop(si, jbs, 40, "damage",
                        "LSN out of sequence: segment first_lsn %d, expected %d" % (h["first_lsn"], expected),
                        None, 1)
            break
        data = seg.load()
        salt = h["salt"]
        steal = bool(h["flags"] & 1)
        pos = jbs
        rec_buf = None
        rec_start = None
        while True:
            if pos >= len(data):
                if rec_buf is not None:
                    stop = Stop(si, rec_start, pos, "damage", "record cut off by the end of the file", None)
                break
            block_end = (pos // jbs + 1) * jbs
            if block_end - pos <= 8:
                if any(data[pos:block_end]):
                    note("padding not zero", segment=seg.seq, offset=pos)
                pos = block_end
                continue
            if not any(data[pos : pos + 8]):
                stop = Stop(si, pos if rec_buf is None else rec_start, pos, "zero", None, None)
                break
            try:
                _length, kind, nxt = check_fragment(data, pos, block_end, salt)
            except Damage as e:
                after = pos + 8 + u16(data, pos + 4) if length_points_inside(data, pos, block_end) else None
                stop = Stop(si, pos if rec_buf is None else rec_start, pos, "damage", str(e), after)
                break
            if kind in (FULL, FIRST):
                if rec_buf is not None:
                    # The document does not say which fragment is the damaged one; this one is
                    # valid and starts a record, so the damage is the unfinished record before it.
                    stop = Stop(si, rec_start, rec_start, "damage",
                                "record interrupted by a %s fragment" % KIND_NAMES[kind], pos)
                    break
                rec_start = pos
                rec_buf = bytearray(data[pos + 8 : nxt])
            else:
                if rec_buf is None:
                    stop = Stop(si, pos, pos, "damage", "%s fragment outside a record" % KIND_NAMES[kind], nxt)
                    break
                rec_buf += data[pos + 8 : nxt]
            if len(rec_buf) > RECORD_LEN_MAX:
                stop = Stop(si, rec_start, pos, "damage", "record longer than RECORD_LEN_MAX", nxt)
                break
            pos = nxt
            if kind in (FULL, LAST):
                try:
                    rec, is_opt = decode_record(rec_buf, expected)
                except Damage as e:
                    stop = Stop(si, rec_start, rec_start, "damage", str(e), nxt)
                    break
                rec.update(what="optional" if is_opt else "record", segment=seg.seq,
                           offset=rec_start, end=nxt, steal=steal)
                found.append(rec)
                if is_opt:
                    optional += 1
                else:
                    records += 1
                if not first_lsn:
                    first_lsn = rec["lsn"]
                last_lsn = rec["lsn"]
                expected += 1
                durable = (seg.seq, nxt)
                rec_buf = None
        if stop is not None:
            break
    check_semantics(found, image)
    for rec in found:
        del rec["steal"]
        emit(rec)
    end.update(records=records, optional_records=optional, first_lsn=first_lsn, last_lsn=last_lsn,
               invalid_records=sum(1 for r in found if r.get("invalid")))
    end["durable_end"] = {"segment": durable[0], "offset": durable[1]} if durable else None
    if errors:
        end.update(decoded=False, error="; ".join(errors))
        emit(end)
        return False, segs
    if stop is None:
        end.update(reason="eof", decoded=True, outcome="clean end")
        emit(end)
        return True, segs
    seg = live[stop.si]
    end.update(reason=stop.reason, cut={"segment": seg.seq, "offset": stop.cut},
               damage_at={"segment": seg.seq, "offset": stop.at})
    if stop.detail:
        end["damage"] = stop.detail
    first_block = stop.first_block if stop.first_block is not None else stop.at // seg.hdr["block_size"] + 1
    where = valid_after(live, stop.si, first_block, stop.after)
    end["valid_after"] = where
    total = sum(s.length for s in live)
    before = sum(s.length for s in live[: stop.si]) + stop.cut
    end["bytes_after_cut"] = total - before
    if where:
        end.update(decoded=False, outcome="error", error="MidJournalCorruption: %s at segment %d "
                   "offset %d, valid record start at segment %d offset %d"
                   % (stop.detail or "zero fill", seg.seq, stop.at, where["segment"], where["offset"]))
        ok = False
    elif stop.reason == "zero":
        end.update(decoded=True, outcome="clean end")
        ok = True
    elif mode == "absolute":
        end.update(decoded=False, outcome="error", error="damage in absolute mode: %s" % stop.detail)
        ok = False
    else:
        end.update(decoded=True, outcome="torn tail cut")
        ok = True
    emit(end)
    return ok, segs


class Stop:
    """Where scanning stopped: segment index, where the non-durable bytes start (cut), where the
    problem was found (at), why, where the fragment after a damaged one starts, and the first
    block of segment si to look for valid records from (default: the block after `at`)."""

    def __init__(self, si, cut, at, reason, detail, after, first_block=None):
        self.si = si
        self.cut = cut
        self.at = at
        self.reason = reason
        self.detail = detail
        self.after = after
        self.first_block = first_block


def check_semantics(records, image):
    """Section 4's semantic validity: records that decode but cannot be applied. Each gets an
    "invalid" list of reasons (absent when valid)."""
    bs = image.get("block_size", 0)
    count = image.get("block_count", 0)
    inodes = image.get("inode_count", 0)
    data_start = image.get("first_data_block", 0)

    def data_block(b):
        return data_start <= b < count

    txn_records = {}
    ended = {}
    revokes = {}  # block -> LSNs of REVOKE records, with their txid
    for r in records:
        why = []
        if r["what"] != "record":
            # Optional records are skipped by readers that do not know them; they count for
            # nothing here (the document is silent on whether a COMMIT's count includes them).
            continue
        t, f, tx = r["type"], r["fields"], r["txid"]
        if t == "WRITE":
            if not data_block(f["block"]):
                why.append("WRITE outside the data region")
            if f["offset"] + f["len"] > bs:
                why.append("WRITE past the block end")
            if r["flags"] & FULL_BLOCK and (f["offset"] != 0 or f["len"] != bs):
                why.append("FULL_BLOCK write with offset %d len %d" % (f["offset"], f["len"]))
            if r["steal"] and not r["flags"] & COMPENSATION and not r["flags"] & HAS_UNDO:
                why.append("steal WRITE without undo")
        elif t == "COPY":
            if not (data_block(f["src"]) and data_block(f["dst"])):
                why.append("COPY outside the data region")
            if f["src"] == f["dst"]:
                why.append("COPY src == dst")
            if f["src_offset"] + f["len"] > bs or f["dst_offset"] + f["len"] > bs:
                why.append("COPY past the block end")
        elif t in ("ALLOC", "FREE"):
            if f["target"] == 0 and f["index"] < data_start:
                why.append("block %s of a metadata block" % t)
            if f["index"] >= (count if f["target"] == 0 else inodes):
                why.append("bit index beyond its bitmap")
        elif t in ("ORPHAN_ADD", "ORPHAN_REMOVE"):
            if f["inode"] >= inodes:
                why.append("bit index beyond its bitmap")
        elif t == "REVOKE":
            if not data_block(f["block"]):
                why.append("REVOKE of a metadata block" if f["block"] < data_start else "REVOKE outside the image")
            revokes.setdefault(f["block"], []).append((r["lsn"], tx))
        if tx in ended:
            why.append("record of a transaction after its %s" % ended[tx])
        elif t in ("COMMIT", "ABORT"):
            if f["records"] != txn_records.get(tx, 0):
                why.append("%s records %d, the journal holds %d" % (t, f["records"], txn_records.get(tx, 0)))
            ended[tx] = t
        txn_records[tx] = txn_records.get(tx, 0) + 1
        if why:
            r["invalid"] = why
    # A COPY below a committed REVOKE of its source. "Committed" means a winner: a transaction
    # with an impossible record or a wrong count is a loser, and a COPY made invalid here makes
    # its own transaction a loser, so this runs to a fixpoint.
    copies = [r for r in records if r["what"] == "record" and r["type"] == "COPY"]
    while True:
        losers = {r["txid"] for r in records if r.get("invalid") and r["what"] == "record"
                  and not r["invalid"][0].startswith("record of a transaction after")}
        winners = {r["txid"] for r in records if r["what"] == "record" and r["type"] == "COMMIT"
                   and not r.get("invalid")} - losers
        changed = False
        for r in copies:
            if "COPY reads its source below a committed REVOKE" in r.get("invalid", []):
                continue
            if any(lsn > r["lsn"] and tx in winners for lsn, tx in revokes.get(r["fields"]["src"], [])):
                r.setdefault("invalid", []).append("COPY reads its source below a committed REVOKE")
                changed = True
        if not changed:
            break


# ---------------------------------------------------------------------------------------------
# Section 7: checkpoint records and the pointer

CKPT_NAME = re.compile(r"^ckpt-([0-9a-f]{16})\.fcr$")
CKPT_MAX = 256 << 20


def decode_checkpoint(path, seq_from_name, image):
    d = {"what": "checkpoint", "file": os.path.basename(path), "name_seq": seq_from_name}
    size = os.path.getsize(path)
    d["len"] = size
    if size > CKPT_MAX:
        d.update(valid=False, error="longer than 256 MiB")
        return d
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 84:
        d.update(valid=False, error="shorter than 84 bytes")
        return d
    errs = []
    if b[0:8] != b"FRCKREC1":
        errs.append("magic")
    d.update(version=u32(b, 8), kind=u32(b, 12), seq=u64(b, 16), lsn=u64(b, 24),
             redo_start=u64(b, 32), image_id=u64(b, 40), block_size=u32(b, 48),
             reserved=u32(b, 52), block_count=u64(b, 56), created=u64(b, 64),
             open_count=u32(b, 72), dirty_count=u32(b, 76), crc32c=u32(b, len(b) - 4))
    if d["version"] != 1:
        errs.append("version")
    if crc32c(memoryview(b)[: len(b) - 4]) != d["crc32c"]:
        errs.append("crc32c")
    n, m = d["open_count"], d["dirty_count"]
    if len(b) != 84 + 16 * (n + m):
        errs.append("length %d != 84 + 16 (N + M) = %d" % (len(b), 84 + 16 * (n + m)))
        d["valid"] = False
        d["error"] = "; ".join(errs)
        return d
    if d["kind"] > 3:
        errs.append("kind")
    if d["reserved"]:
        errs.append("reserved")
    c, r = d["lsn"], d["redo_start"]
    opens = [list(struct.unpack_from("<QQ", b, 80 + 16 * i)) for i in range(n)]
    dirty = [list(struct.unpack_from("<QQ", b, 80 + 16 * n + 16 * i)) for i in range(m)]
    d["open"] = opens
    d["dirty"] = dirty
    if not 1 <= r <= c + 1:
        errs.append("R out of 1..=C+1")
    if any(opens[i][0] >= opens[i + 1][0] for i in range(n - 1)):
        errs.append("open transactions not ascending")
    if any(t == 0 for t, _ in opens):
        errs.append("open txid 0")
    if any(not r <= f <= c for _, f in opens):
        errs.append("open first LSN outside R..=C")
    if any(dirty[i][0] >= dirty[i + 1][0] for i in range(m - 1)):
        errs.append("dirty table not ascending")
    if any(not r <= rl <= c for _, rl in dirty):
        errs.append("rec_lsn outside R..=C")
    if any(blk >= d["block_count"] for blk, _ in dirty):
        errs.append("dirty block outside the image")
    need = min([f for _, f in opens] + [rl for _, rl in dirty] + [c + 1])
    if r != need:
        errs.append("R %d is not the smallest LSN the tables need (%d)" % (r, need))
    if d["seq"] != seq_from_name:
        errs.append("seq differs from the file name")
    if image.get("valid"):
        if (d["image_id"], d["block_size"], d["block_count"]) != (
                image["image_id"], image["block_size"], image["block_count"]):
            errs.append("geometry or image_id differs from the image's")
    d["valid"] = not errs
    if errs:
        d["error"] = "; ".join(errs)
    return d


def decode_checkpoints(dirpath, image, journal_first_lsn):
    cdir = os.path.join(dirpath, "checkpoints")
    if not os.path.isdir(cdir):
        return
    recs = {}
    for n in sorted(os.listdir(cdir)):
        m = CKPT_NAME.match(n)
        if m:
            seq = int(m.group(1), 16)
            d = decode_checkpoint(os.path.join(cdir, n), seq, image)
            recs[seq] = d
            emit(d)
    ptr_seq = None
    p = os.path.join(cdir, "latest")
    if os.path.exists(p):
        with open(p, "rb") as f:
            b = f.read()
        d = {"what": "pointer", "len": len(b)}
        if len(b) != 20:
            d.update(valid=False, error="length %d, not 20" % len(b))
        else:
            d.update(magic_ok=b[0:8] == b"FRCKPTR1", seq=u64(b, 8), crc32c=u32(b, 16))
            d["valid"] = d["magic_ok"] and crc32c(b[0:16]) == d["crc32c"]
            if d["valid"]:
                ptr_seq = d["seq"]
        emit(d)

    def usable(seq):
        r = recs.get(seq)
        if not r or not r["valid"]:
            return False
        # Section 7: a record whose R the journal no longer reaches is passed over.
        return journal_first_lsn is None or r["redo_start"] >= journal_first_lsn

    chosen = None
    how = None
    if ptr_seq is not None:
        newest = ptr_seq
        for k in range(1, 5):
            if ptr_seq + k in recs:
                newest = ptr_seq + k
        if ptr_seq + 5 in recs:
            newest = None
        if newest is not None and usable(newest):
            chosen, how = newest, "pointer"
    if chosen is None:
        for seq in sorted(recs, reverse=True):
            if usable(seq):
                chosen, how = seq, "listing"
                break
    if recs or ptr_seq is not None:
        d = {"what": "selected", "seq": chosen, "how": how}
        if chosen is not None:
            d.update(lsn=recs[chosen]["lsn"], redo_start=recs[chosen]["redo_start"])
        emit(d)


# ---------------------------------------------------------------------------------------------
# Sections 5 and 9: the journal fingerprint, the marker and the copy log


def fingerprint(segs):
    files = []
    for s in sorted(segs or [], key=lambda s: s.name):
        if s.hdr is not None and not s.ignored and not s.error:
            files.append([s.name, s.length, s.hdr["salt"], s.hdr["first_lsn"]])
        else:
            files.append([s.name, s.length, 0, 0])
    return files


def journal_tag(files):
    raw = json.dumps(files, separators=(",", ":")).encode()
    return (crc32c(raw) << 32) | crc32c(raw, 0x5EED), raw


def decode_copylog(dirpath, segs):
    p = os.path.join(dirpath, "recovery.cpl")
    if not os.path.exists(p):
        return
    with open(p, "rb") as f:
        b = f.read()
    d = {"what": "copylog", "len": len(b)}
    tag, raw = journal_tag(fingerprint(segs))
    d["journal_tag_expected"] = tag
    errs = []
    if len(b) < 41:
        d.update(valid=False, error="shorter than 41 bytes")
        emit(d)
        return
    if b[0:8] != b"FRCPYL01":
        errs.append("magic")
    d.update(tag=u64(b, 8), start_kind=b[16], start_seq=u64(b, 17), start_crc=u32(b, 25),
             count=u64(b, 29), crc32c=u32(b, len(b) - 4))
    if crc32c(memoryview(b)[: len(b) - 4]) != d["crc32c"]:
        errs.append("crc32c")
    if d["tag"] != tag:
        errs.append("tag is not the current journal's")
    if d["start_kind"] not in (0, 1, 2):
        errs.append("start kind")
    entries = []
    pos = 37
    body_end = len(b) - 4
    for _ in range(d["count"]):
        if pos + 12 > body_end:
            errs.append("entries run past the checksum")
            break
        lsn, ln = struct.unpack_from("<QI", b, pos)
        if pos + 12 + ln > body_end:
            errs.append("entries run past the checksum")
            break
        entries.append({"lsn": lsn, "bytes": blob(b[pos + 12 : pos + 12 + ln])})
        pos += 12 + ln
    else:
        if pos != body_end:
            errs.append("entries end at %d, checksum at %d" % (pos, body_end))
    if any(entries[i]["lsn"] >= entries[i + 1]["lsn"] for i in range(len(entries) - 1)):
        errs.append("entries not ascending by LSN")
    d["entries"] = entries
    d["valid"] = not errs
    if errs:
        d["error"] = "; ".join(errs)
    emit(d)


def decode_marker(dirpath, segs, last_lsn):
    p = os.path.join(dirpath, "recovered.json")
    if not os.path.exists(p):
        return
    d = {"what": "marker"}
    try:
        with open(p) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        d.update(valid=False, error=str(e))
        emit(d)
        return
    files = fingerprint(segs)
    d.update(version=m.get("version"), last_lsn=m.get("last_lsn"), files=m.get("files"),
             files_match=m.get("files") == files, journal_files=files,
             last_lsn_match=m.get("last_lsn") == last_lsn)
    emit(d)


# ---------------------------------------------------------------------------------------------


def decode_dir(dirpath, mode):
    """Decodes one recovery directory into OUT; returns the exit status for it."""
    image = decode_image(os.path.join(dirpath, "image.img"))
    emit(image)
    cdir = os.path.join(dirpath, "checkpoints")
    has_ckpt = os.path.isdir(cdir) and any(CKPT_NAME.match(n) for n in os.listdir(cdir))
    ok, segs = decode_journal(dirpath, image, mode, has_ckpt)
    end = json.loads(OUT[-1]) if OUT and '"what":"end"' in OUT[-1] else {}
    live = [s for s in segs or [] if s.hdr is not None and not s.ignored and not s.error]
    journal_first = live[0].hdr["first_lsn"] if live else None
    decode_checkpoints(dirpath, image, journal_first)
    decode_copylog(dirpath, segs)
    decode_marker(dirpath, segs, end.get("last_lsn"))
    return 0 if ok and image.get("valid") else 1


def main(argv):
    global BYTES_MODE, LITERAL
    args = list(argv[1:])
    if args == ["--selftest"]:
        return selftest()
    mode = "tolerate-tail"
    dirs = []
    while args:
        a = args.pop(0)
        if a == "--mode" and args:
            mode = args.pop(0)
        elif a == "--bytes" and args:
            BYTES_MODE = args.pop(0)
        elif a == "--crc-literal":
            LITERAL = True
        elif not a.startswith("--"):
            dirs.append(a)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    if not dirs or mode not in ("tolerate-tail", "absolute") or BYTES_MODE not in ("crc", "hex"):
        print(__doc__, file=sys.stderr)
        return 2
    if not LITERAL and crc32c(b"123456789") != 0xE3069283:
        print("CRC-32C self-check failed", file=sys.stderr)
        return 2
    if len(dirs) == 1:
        status = decode_dir(dirs[0], mode)
        sys.stdout.write("\n".join(OUT) + "\n")
        return status
    # Several directories: each one's lines between a "dir" line and an "exit" line, so that
    # one interpreter start serves many small directories.
    worst = 0
    for d in dirs:
        del OUT[:]
        emit({"what": "dir", "path": d})
        status = decode_dir(d, mode)
        emit({"what": "exit", "status": status})
        sys.stdout.write("\n".join(OUT) + "\n")
        worst = max(worst, status)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""Independent reference reader, tokenizer and scorer for rnnlm model blobs.

Reads a model in the binary format of doc/format.md (versions 1 and 2) and
scores documents given as lists of token ids, writing the log-probability of
every predicted token.  The recurrent cells are written out with plain tensor
operations in float64 (no library recurrent modules), straight from the
equations in doc/format.md, so the result can be compared with the
extension's own.  The text rules of Unicode models (rules 1: normalisation,
case folding, the word, char and bpe tokenizers) and bpe's learning and
encoding are written from the same document, with Python's unicodedata.

Usage:
    reference.py MODEL.bin DOCS.json    DOCS.json: [[id, ...], ...]
                                        (or {"docs": [[id, ...], ...]})
    reference.py --info MODEL.bin       what the blob holds, as JSON
    reference.py --encode MODEL.bin TEXTS.json
                                        TEXTS.json: ["text", ...]; the token
                                        ids of each text
    reference.py --learn MODEL.bin TEXTS.json --max-vocab N
                                        learns bpe from the training texts
                                        under the model's text rules and
                                        compares with its vocabulary and merges
    reference.py --selftest             checks the parser, the cells and bpe

Output (stdout), as JSON:
    scoring: {"docs": [[logprob, ...], ...]}, one list per document with
        len(document) + 1 entries (each token, then the final <eod>);
    --encode: {"ids": [[id, ...], ...]}, one list per text, without <eod>;
    --learn: {"same": true|false, "merges": M, "V": V, "first_difference": ...};
    --info: the header fields, the text rules, the merge count, and whether
        serializing the parsed model again gives the same bytes.
An invalid model exits with status 2 and the reason on stderr; tokenizing
with the rules of 0.1 (their tables are in src/core/text.c) exits with 3.
"""

import argparse
import array
import codecs
import collections
import json
import math
import random
import struct
import sys
import unicodedata
import zlib

import torch

MAGIC = b"RNNLM\x00\r\n"
VERSIONS = (1, 2)
WRITE_VERSION = 2
CELLS = {0: "rnn", 1: "lstm", 2: "gru"}
TOKENIZERS = {0: "word", 1: "char", 2: "bpe"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
EOD, UNK = 0, 1
MAX_VOCAB, MAX_DIM, MAX_LAYERS, MAX_TOKEN_BYTES = 2000000, 16384, 16, 1024

# Version 1: magic, version, cell, tokenizer, flags, V, E, H, L, reserved, P.
V1_HEADER = struct.Struct("<8sIIIIIIIIIQ")
# Version 2: magic, version, number of sections; each section: tag, length.
V2_HEADER = struct.Struct("<8sII")
SECTION_HEAD = struct.Struct("<4sQ")
MAX_SECTIONS = 64
# CONF: cell, tokenizer, flags, V, E, H, L, P.
CONF = struct.Struct("<IIIIIIIQ")
TAG_CONF, TAG_TEXT, TAG_VOCB, TAG_MERG, TAG_PARM = (
    b"CONF", b"TEXT", b"VOCB", b"MERG", b"PARM")
KNOWN_TAGS = (TAG_CONF, TAG_TEXT, TAG_VOCB, TAG_MERG, TAG_PARM)
REQUIRED_TAGS = (TAG_CONF, TAG_TEXT, TAG_VOCB, TAG_PARM)

# Text rules: 0 those of rnnlm 0.1, 1 Unicode.
RULES_V01, RULES_UNICODE = 0, 1
NORMALIZE = {0: None, 1: "NFC", 2: "NFKC"}
MAX_FILTER_BYTES, MAX_UNICODE_VERSION_BYTES = 255, 31
# The text rules of every version 1 file.
TEXT_V01 = {"rules": RULES_V01, "normalize": 0, "split_on_punctuation": False,
            "filters_given": False, "filters": "", "unicode_version": ""}

# bpe: the bytes 0..255 are tokens 2..257; a piece has at most 256 bytes.
BPE_BYTE0, BPE_MAX_PIECE = 2, 256


class FormatError(Exception):
    """A blob that does not follow doc/format.md."""


# Number of float parameters implied by the shapes in doc/format.md.
def count_params(cell, V, E, H, L):
    G = GATES[cell]
    n = V * E + V * H + V
    for layer in range(L):
        in_dim = E if layer == 0 else H
        n += G * H * (in_dim + H + 1)
    return n


# Little-endian float32 bytes to a flat float64 tensor.
def floats_from_bytes(data):
    arr = array.array("f")
    arr.frombytes(data)
    if sys.byteorder != "little":
        arr.byteswap()
    return torch.tensor(arr, dtype=torch.float64)


# Flat float tensor to little-endian float32 bytes.
def floats_to_bytes(t):
    arr = array.array("f", t.to(torch.float32).tolist())
    if sys.byteorder != "little":
        arr.byteswap()
    return arr.tobytes()


class Cursor:
    """Reads little-endian fields from a byte string, refusing to run past it."""

    def __init__(self, data, what, pos=0):
        self.data, self.what, self.pos = data, what, pos

    # The next n bytes.
    def take(self, n):
        if n > len(self.data) - self.pos:
            raise FormatError("%s is truncated" % self.what)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    # A u32 byte length and that many bytes of UTF-8, at most max_bytes.
    def string(self, max_bytes, what):
        n = self.u32()
        if n > max_bytes:
            raise FormatError("%s has %d bytes, at most %d" % (what, n, max_bytes))
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("%s is not UTF-8: %s" % (what, e))

    # Refuses bytes left over.
    def end(self):
        if self.pos != len(self.data):
            raise FormatError("%s has %d bytes too many"
                              % (self.what, len(self.data) - self.pos))


# Checks the shapes shared by both versions; returns the config fields.
def check_conf(cell_id, tok_id, flags, V, E, H, L, P):
    if cell_id not in CELLS:
        raise FormatError("unknown cell %d" % cell_id)
    if tok_id not in TOKENIZERS:
        raise FormatError("unknown tokenizer %d" % tok_id)
    if flags & ~1:
        raise FormatError("unknown flags %#x" % flags)
    if not 3 <= V <= MAX_VOCAB:
        raise FormatError("vocabulary size %d out of range" % V)
    if not (1 <= E <= MAX_DIM and 1 <= H <= MAX_DIM):
        raise FormatError("embedding %d / hidden %d out of range" % (E, H))
    if not 1 <= L <= MAX_LAYERS:
        raise FormatError("layer count %d out of range" % L)
    cell = CELLS[cell_id]
    expected_p = count_params(cell, V, E, H, L)
    if P != expected_p:
        raise FormatError("parameter count %d, shapes imply %d" % (P, expected_p))
    return {"cell": cell, "tokenizer": TOKENIZERS[tok_id], "lowercase": bool(flags & 1),
            "V": V, "E": E, "H": H, "L": L, "P": P}


# Reads V vocabulary entries (u32 length, bytes) and checks them; a list of bytes.
def read_vocab(cur, conf):
    V, tokenizer = conf["V"], conf["tokenizer"]
    vocab = []
    for i in range(V):
        n = cur.u32()
        if not 1 <= n <= MAX_TOKEN_BYTES:
            raise FormatError("vocabulary entry %d has length %d" % (i, n))
        raw = cur.take(n)
        if tokenizer != "bpe":
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FormatError("vocabulary entry %d is not UTF-8: %s" % (i, e))
        vocab.append(raw)
    if vocab[EOD] != b"<eod>" or vocab[UNK] != b"<unk>":
        raise FormatError("entries 0 and 1 are %r, %r, not <eod>, <unk>"
                          % (vocab[EOD], vocab[UNK]))
    if len(set(vocab)) != V:
        raise FormatError("duplicate vocabulary entries")
    if tokenizer == "bpe":
        if V < BPE_BYTE0 + 256:
            raise FormatError("a bpe vocabulary of %d entries cannot hold the 256 bytes" % V)
        for b in range(256):
            if vocab[BPE_BYTE0 + b] != bytes([b]):
                raise FormatError("bpe entry %d is %r, not the byte %d"
                                  % (BPE_BYTE0 + b, vocab[BPE_BYTE0 + b], b))
    return vocab


# The TEXT payload: rules, normalize, flags, filters, Unicode version.
def read_text(payload, conf):
    cur = Cursor(payload, "the TEXT section")
    rules, normalize, flags = cur.u32(), cur.u32(), cur.u32()
    filters = cur.string(MAX_FILTER_BYTES, "the filters")
    unicode_version = cur.string(MAX_UNICODE_VERSION_BYTES, "the Unicode version")
    cur.end()
    if rules not in (RULES_V01, RULES_UNICODE):
        raise FormatError("unknown text rules %d" % rules)
    if normalize not in NORMALIZE:
        raise FormatError("unknown normalisation %d" % normalize)
    if flags & ~3:
        raise FormatError("unknown text flags %#x" % flags)
    if rules == RULES_V01:
        if normalize or flags:
            raise FormatError("the rules of 0.1 take no normalisation and no flags")
        if conf["tokenizer"] == "bpe":
            raise FormatError("a bpe model with the rules of 0.1")
        if unicode_version:
            raise FormatError("the rules of 0.1 with Unicode version %r" % unicode_version)
    return {"rules": rules, "normalize": normalize,
            "split_on_punctuation": bool(flags & 1), "filters_given": bool(flags & 2),
            "filters": filters, "unicode_version": unicode_version}


# The MERG payload: u32 M, then M pairs (a, b); checked against the vocabulary.
def read_merges(payload, vocab):
    V = len(vocab)
    cur = Cursor(payload, "the MERG section")
    M = cur.u32()
    if len(payload) != 4 + 8 * M:
        raise FormatError("the MERG section has %d bytes for %d merges" % (len(payload), M))
    index = {tok: i for i, tok in enumerate(vocab)}
    merges, seen = [], set()
    for r in range(M):
        a, b = cur.u32(), cur.u32()
        if not (BPE_BYTE0 <= a < V and BPE_BYTE0 <= b < V):
            raise FormatError("merge %d (%d, %d) names a token outside 2..%d" % (r, a, b, V - 1))
        into = index.get(vocab[a] + vocab[b])
        if into is None:
            raise FormatError("merge %d (%d, %d) spells no token of the vocabulary" % (r, a, b))
        if into < BPE_BYTE0 + 256:
            raise FormatError("merge %d (%d, %d) spells token %d, a reserved token or a byte"
                              % (r, a, b, into))
        if (a, b) in seen:
            raise FormatError("merge %d (%d, %d) repeats an earlier one" % (r, a, b))
        seen.add((a, b))
        merges.append((a, b))
    cur.end()
    return merges


# The PARM payload (or version 1's tail): P finite floats, as the model's tensors.
def read_params(data, conf):
    cell, V, E, H, L, P = (conf[k] for k in ("cell", "V", "E", "H", "L", "P"))
    if len(data) != 4 * P:
        raise FormatError("%d bytes of parameters, expected %d" % (len(data), 4 * P))
    flat = floats_from_bytes(data)
    if not torch.isfinite(flat).all():
        raise FormatError("non-finite parameter")
    G = GATES[cell]
    off = 0

    # Takes the next rows*cols floats of the flat parameter vector.
    def take(rows, cols=None):
        nonlocal off
        size = rows * (cols or 1)
        t = flat[off:off + size]
        off += size
        return t.view(rows, cols) if cols else t

    emb = take(V, E)
    layers = []
    for layer in range(L):
        in_dim = E if layer == 0 else H
        layers.append({"wx": take(G * H, in_dim), "wh": take(G * H, H),
                       "b": take(G * H)})
    why = take(V, H)
    by = take(V)
    assert off == P
    return {"emb": emb, "layers": layers, "why": why, "by": by}


# Version 1: the fixed header, the vocabulary, the parameters (body: without the CRC).
def parse_v1(body):
    if len(body) < V1_HEADER.size:
        raise FormatError("blob too short for a version 1 header: %d bytes" % len(body))
    (_, _, cell_id, tok_id, flags, V, E, H, L, reserved,
     P) = V1_HEADER.unpack_from(body, 0)
    if reserved != 0:
        raise FormatError("reserved field is %d" % reserved)
    conf = check_conf(cell_id, tok_id, flags, V, E, H, L, P)
    if conf["tokenizer"] == "bpe":
        raise FormatError("version 1 has no bpe tokenizer")
    cur = Cursor(body, "the vocabulary", V1_HEADER.size)
    vocab = read_vocab(cur, conf)
    m = dict(conf, version=1, text=dict(TEXT_V01), vocab=vocab, merges=None)
    m.update(read_params(body[cur.pos:], conf))
    return m


# Splits a version 2 body into its sections: a list of (tag, payload).
def v2_sections(body):
    (_, _, nsections) = V2_HEADER.unpack_from(body, 0)
    if nsections > MAX_SECTIONS:
        raise FormatError("%d sections, at most %d" % (nsections, MAX_SECTIONS))
    cur = Cursor(body, "the sections", V2_HEADER.size)
    out = []
    for i in range(nsections):
        tag, length = SECTION_HEAD.unpack(cur.take(SECTION_HEAD.size))
        out.append((tag, cur.take(length)))
    if cur.pos != len(body):
        raise FormatError("%d bytes after the last section" % (len(body) - cur.pos))
    return out


# Version 2: tagged sections (body: without the CRC).
def parse_v2(body):
    if len(body) < V2_HEADER.size:
        raise FormatError("blob too short for a version 2 header: %d bytes" % len(body))
    sections = {}
    seen = set()
    for i, (tag, payload) in enumerate(v2_sections(body)):
        if any(c >= 0x80 for c in tag):
            raise FormatError("section tag %r is not ASCII" % tag)
        if i == 0 and tag != TAG_CONF:
            raise FormatError("the first section is %r, not CONF" % tag)
        if tag in seen:
            raise FormatError("section %r repeats" % tag)
        seen.add(tag)
        if tag in KNOWN_TAGS:
            sections[tag] = payload
        elif not 0x61 <= tag[0] <= 0x7A:
            raise FormatError("unknown section %r that must be understood" % tag)
        # else: a lower-case tag not known here, skipped
    for tag in REQUIRED_TAGS:
        if tag not in sections:
            raise FormatError("no %s section" % tag.decode())
    if len(sections[TAG_CONF]) != CONF.size:
        raise FormatError("the CONF section has %d bytes, not %d"
                          % (len(sections[TAG_CONF]), CONF.size))
    conf = check_conf(*CONF.unpack(sections[TAG_CONF]))
    is_bpe = conf["tokenizer"] == "bpe"
    if (TAG_MERG in sections) != is_bpe:
        raise FormatError("a MERG section belongs to bpe models, and only to them")
    text = read_text(sections[TAG_TEXT], conf)
    cur = Cursor(sections[TAG_VOCB], "the VOCB section")
    vocab = read_vocab(cur, conf)
    cur.end()
    merges = read_merges(sections[TAG_MERG], vocab) if is_bpe else None
    m = dict(conf, version=2, text=text, vocab=vocab, merges=merges)
    m.update(read_params(sections[TAG_PARM], conf))
    return m


# Parses and validates a model blob; returns a dict of config, text rules,
# vocabulary (a list of bytes), merges (bpe) and weights.
def parse_model(blob):
    if len(blob) < V2_HEADER.size + 4:
        raise FormatError("blob too short: %d bytes" % len(blob))
    body, stored_crc = blob[:-4], struct.unpack("<I", blob[-4:])[0]
    actual_crc = zlib.crc32(body) & 0xFFFFFFFF
    if actual_crc != stored_crc:
        raise FormatError("CRC mismatch: stored %08x, computed %08x"
                          % (stored_crc, actual_crc))
    magic, version, _ = V2_HEADER.unpack_from(body, 0)
    if magic != MAGIC:
        raise FormatError("bad magic %r" % magic)
    if version not in VERSIONS:
        raise FormatError("unsupported version %d" % version)
    return parse_v1(body) if version == 1 else parse_v2(body)


# Assembles a version 2 blob from (tag, payload) sections, the CRC added.
def build_v2(sections, count=None):
    out = bytearray(V2_HEADER.pack(MAGIC, 2, len(sections) if count is None else count))
    for tag, payload in sections:
        out += SECTION_HEAD.pack(tag, len(payload)) + payload
    out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
    return bytes(out)


# Serializes a model dict (as parse_model returns) into a blob of the given
# format version (2 by default; 1 only for word or char with the rules of 0.1).
def serialize_model(m, version=WRITE_VERSION):
    cell_id = {v: k for k, v in CELLS.items()}[m["cell"]]
    tok_id = {v: k for k, v in TOKENIZERS.items()}[m["tokenizer"]]
    V, E, H, L = m["V"], m["E"], m["H"], m["L"]
    P = count_params(m["cell"], V, E, H, L)
    flags = 1 if m["lowercase"] else 0
    vocab = b"".join(struct.pack("<I", len(t)) + t for t in m["vocab"])
    parts = [m["emb"].reshape(-1)]
    for lp in m["layers"]:
        parts += [lp["wx"].reshape(-1), lp["wh"].reshape(-1), lp["b"]]
    parts += [m["why"].reshape(-1), m["by"]]
    flat = torch.cat(parts)
    assert flat.numel() == P
    params = floats_to_bytes(flat)
    text = m["text"]
    if version == 1:
        if m["tokenizer"] == "bpe" or text["rules"] != RULES_V01:
            raise ValueError("version 1 holds only word and char models with the rules of 0.1")
        out = V1_HEADER.pack(MAGIC, 1, cell_id, tok_id, flags, V, E, H, L, 0, P)
        out += vocab + params
        return out + struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)
    if version != 2:
        raise ValueError("no format version %r" % version)

    # A u32 byte length and the UTF-8 bytes of s.
    def string(s):
        raw = s.encode("utf-8")
        return struct.pack("<I", len(raw)) + raw

    text_payload = (struct.pack("<III", text["rules"], text["normalize"],
                                (1 if text["split_on_punctuation"] else 0)
                                | (2 if text["filters_given"] else 0))
                    + string(text["filters"]) + string(text["unicode_version"]))
    sections = [(TAG_CONF, CONF.pack(cell_id, tok_id, flags, V, E, H, L, P)),
                (TAG_TEXT, text_payload), (TAG_VOCB, vocab)]
    if m["tokenizer"] == "bpe":
        sections.append((TAG_MERG, struct.pack("<I", len(m["merges"])) + b"".join(
            struct.pack("<II", a, b) for a, b in m["merges"])))
    sections.append((TAG_PARM, params))
    return build_v2(sections)


# One time step of one layer; returns the new (h, c).
def cell_step(cell, lp, x, h, c):
    H = h.shape[0]
    if cell == "rnn":
        return torch.tanh(lp["wx"] @ x + lp["wh"] @ h + lp["b"]), c
    if cell == "lstm":
        a = lp["wx"] @ x + lp["wh"] @ h + lp["b"]
        i = torch.sigmoid(a[0:H])
        f = torch.sigmoid(a[H:2 * H])
        g = torch.tanh(a[2 * H:3 * H])
        o = torch.sigmoid(a[3 * H:4 * H])
        c = f * c + i * g
        return o * torch.tanh(c), c
    # gru: the candidate sees W_h (r * h), one bias per gate
    wx, wh, b = lp["wx"], lp["wh"], lp["b"]
    ax = wx @ x
    z = torch.sigmoid(ax[0:H] + wh[0:H] @ h + b[0:H])
    r = torch.sigmoid(ax[H:2 * H] + wh[H:2 * H] @ h + b[H:2 * H])
    cand = torch.tanh(ax[2 * H:3 * H] + wh[2 * H:3 * H] @ (r * h) + b[2 * H:3 * H])
    return (1 - z) * h + z * cand, c


# Log-probabilities of each token of ids, then of <eod>, from the zero state.
def score_document(m, ids):
    V, H, L = m["V"], m["H"], m["L"]
    for t in ids:
        if not isinstance(t, int) or not 0 <= t < V:
            raise ValueError("token id %r outside the vocabulary (size %d)" % (t, V))
    h = [torch.zeros(H, dtype=torch.float64) for _ in range(L)]
    c = [torch.zeros(H, dtype=torch.float64) for _ in range(L)]
    inputs = [EOD] + list(ids)
    targets = list(ids) + [EOD]
    out = []
    for inp, tgt in zip(inputs, targets):
        x = m["emb"][inp]
        for layer in range(L):
            h[layer], c[layer] = cell_step(m["cell"], m["layers"][layer], x,
                                           h[layer], c[layer])
            x = h[layer]
        logp = torch.log_softmax(m["why"] @ x + m["by"], dim=0)
        out.append(float(logp[tgt]))
    return out


# ---------------- text rules 1 (Unicode) and bpe ----------------


# Decoding that turns every byte of ill-formed UTF-8 into its own U+FFFD.
def _each_byte_replaced(err):
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("rnnlm_each_byte", _each_byte_replaced)


# A document's characters under the model's text rules (before tokenizing):
# bytes are decoded as UTF-8 (an ill-formed byte is U+FFFD), then normalised
# and, with lowercase, case folded.
def prepare_text(m, text):
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "rnnlm_each_byte")
    if m["text"]["rules"] != RULES_UNICODE:
        raise ValueError("the reference tokenizes only with the Unicode rules (1)")
    form = NORMALIZE[m["text"]["normalize"]]
    if form:
        text = unicodedata.normalize(form, text)
    if m["lowercase"]:
        text = text.casefold()
    return text


# White space: category Zs, Zl or Zp, or bidirectional class WS, B or S.
def is_white(ch):
    return (unicodedata.category(ch) in ("Zs", "Zl", "Zp")
            or unicodedata.bidirectional(ch) in ("WS", "B", "S"))


# The bpe class of a character: 0 letter, mark or number, 1 white space, 2 other.
def piece_class(ch):
    if unicodedata.category(ch)[0] in "LMN":
        return 0
    return 1 if is_white(ch) else 2


# Cuts a string into parts of at most max_bytes bytes of UTF-8, at character
# boundaries, each as long as it can be.
def cut_utf8(s, max_bytes=BPE_MAX_PIECE):
    parts, cur, n = [], [], 0
    for ch in s:
        b = len(ch.encode("utf-8"))
        if cur and n + b > max_bytes:
            parts.append("".join(cur))
            cur, n = [], 0
        cur.append(ch)
        n += b
    if cur:
        parts.append("".join(cur))
    return parts


# The bpe pre-tokenizer: the pieces (UTF-8 bytes) of prepared text.  Runs of
# one class; the space (U+0020) that ends a run of white space, just before a
# run that is not white space, begins that run instead; then every piece is
# cut after at most 256 bytes.
def bpe_pieces(text):
    runs = []
    for ch in text:
        k = piece_class(ch)
        if runs and runs[-1][0] == k:
            runs[-1][1] += ch
        else:
            runs.append([k, ch])
    for i in range(len(runs) - 1):
        if runs[i][0] == 1 and runs[i][1].endswith(" ") and runs[i + 1][0] != 1:
            runs[i][1] = runs[i][1][:-1]
            runs[i + 1][1] = " " + runs[i + 1][1]
    return [p.encode("utf-8") for _, run in runs if run for p in cut_utf8(run)]


# The word tokenizer under rules 1: words are the runs between white space; a
# filtered character (one of the filters when given, else any P* or S*) is
# removed, or with split_on_punctuation separates words.
def words(m, text):
    t = m["text"]
    out, cur = [], []
    for ch in text:
        if t["filters_given"]:
            filtered = ch in t["filters"]
        else:
            filtered = unicodedata.category(ch)[0] in "PS"
        white = is_white(ch)
        if white or (filtered and t["split_on_punctuation"]):
            if cur:
                out.append("".join(cur))
            cur = []
        elif not filtered:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


class Bpe:
    """A bpe model's merges, for encoding."""

    def __init__(self, vocab, merges):
        self.vocab = vocab
        index = {tok: i for i, tok in enumerate(vocab)}
        self.rank = {pair: r for r, pair in enumerate(merges)}
        self.merges = merges
        self.into = [index[vocab[a] + vocab[b]] for a, b in merges]

    # The token ids of one piece (bytes): from its bytes, join every
    # occurrence, left to right, of the adjacent pair learned first, until
    # no adjacent pair is a merge.
    def encode_piece(self, piece):
        ids = [BPE_BYTE0 + b for b in piece]
        while len(ids) > 1:
            ranks = [self.rank[p] for p in zip(ids, ids[1:]) if p in self.rank]
            if not ranks:
                break
            best = min(ranks)
            a, b = self.merges[best]
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
                    out.append(self.into[best])
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids


# The token ids of a text (str or bytes) for a model of any tokenizer (rules 1),
# without the final <eod>.
def encode_text(m, text, bpe=None):
    text = prepare_text(m, text)
    if m["tokenizer"] == "bpe":
        bpe = bpe or Bpe(m["vocab"], m["merges"])
        return [t for p in bpe_pieces(text) for t in bpe.encode_piece(p)]
    index = m.get("_index")
    if index is None:
        index = m["_index"] = {tok: i for i, tok in enumerate(m["vocab"])}
    units = words(m, text) if m["tokenizer"] == "word" else list(text)
    return [index.get(u.encode("utf-8"), UNK) for u in units]


# Learns bpe from counted pieces ({bytes: weight}): repeatedly merges the
# adjacent pair occurring most often (ties: smaller first id, then smaller
# second id), never one spelling <eod> or <unk>, until max_vocab tokens or
# no pair occurs twice.  Returns (vocab, merges).
def learn_bpe_pieces(counts, max_vocab):
    vocab = [b"<eod>", b"<unk>"] + [bytes([b]) for b in range(256)]
    index = {tok: i for i, tok in enumerate(vocab)}
    reserved = (vocab[EOD], vocab[UNK])
    seqs = [[[BPE_BYTE0 + b for b in piece], w] for piece, w in sorted(counts.items())]
    merges = []
    while len(vocab) < max_vocab:
        pairs = collections.Counter()
        for ids, w in seqs:
            for p in zip(ids, ids[1:]):
                pairs[p] += w
        best = None
        for (a, b), c in pairs.items():
            if c < 2 or vocab[a] + vocab[b] in reserved:
                continue
            key = (-c, a, b)
            if best is None or key < best:
                best = key
        if best is None:
            break
        _, a, b = best
        spelled = vocab[a] + vocab[b]
        into = index.get(spelled)
        if into is None:
            into = index[spelled] = len(vocab)
            vocab.append(spelled)
        merges.append((a, b))
        for entry in seqs:
            ids, out, i = entry[0], [], 0
            while i < len(ids):
                if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
                    out.append(into)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            entry[0] = out
    return vocab, merges


# Learns bpe from training texts under the text rules of model m (its
# normalisation and lowercase); returns (vocab, merges).
def learn_bpe(m, texts, max_vocab):
    counts = collections.Counter()
    for t in texts:
        counts.update(bpe_pieces(prepare_text(m, t)))
    return learn_bpe_pieces(counts, max_vocab)


# Text rules 1 with no options, as a new model has them.
def text_unicode(normalize=0, unicode_version="15.0.0"):
    return {"rules": RULES_UNICODE, "normalize": normalize, "split_on_punctuation": False,
            "filters_given": False, "filters": "", "unicode_version": unicode_version}


# Builds a random model dict with the given shapes (a char model unless a
# vocabulary and merges are given).
def random_model(cell, V, E, H, L, gen, scale=0.5, tokenizer="char", vocab=None,
                 merges=None):
    G = GATES[cell]

    # Uniform random float64 values in [-scale, scale), rounded to float32.
    def rnd(*shape):
        t = (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale
        return t.to(torch.float32).to(torch.float64)

    if vocab is None:
        vocab = ([b"<eod>", b"<unk>"] + [b"t%d" % i for i in range(V - 3)]
                 + ["é中".encode("utf-8")])
    return {"version": WRITE_VERSION, "cell": cell, "tokenizer": tokenizer,
            "lowercase": False, "V": V, "E": E, "H": H, "L": L,
            "P": count_params(cell, V, E, H, L), "text": text_unicode(),
            "vocab": vocab, "merges": merges,
            "emb": rnd(V, E),
            "layers": [{"wx": rnd(G * H, E if l == 0 else H), "wh": rnd(G * H, H),
                        "b": rnd(G * H)} for l in range(L)],
            "why": rnd(V, H), "by": rnd(V)}


# Scalar pure-Python scoring, written separately, to cross-check score_document.
def score_document_scalar(m, ids):
    V, H, L, cell = m["V"], m["H"], m["L"], m["cell"]
    emb = m["emb"].tolist()
    layers = [{k: v.tolist() for k, v in lp.items()} for lp in m["layers"]]
    why, by = m["why"].tolist(), m["by"].tolist()
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))

    # Row r of matrix w times vector v.
    def dot(w, r, v):
        return sum(a * b for a, b in zip(w[r], v))

    h = [[0.0] * H for _ in range(L)]
    c = [[0.0] * H for _ in range(L)]
    res = []
    for inp, tgt in zip([EOD] + ids, ids + [EOD]):
        x = emb[inp]
        for l in range(L):
            p, hp, cp = layers[l], h[l], c[l]
            pre = lambda r, hv=hp: dot(p["wx"], r, x) + dot(p["wh"], r, hv) + p["b"][r]
            if cell == "rnn":
                hn = [math.tanh(pre(j)) for j in range(H)]
            elif cell == "lstm":
                cn = [sig(pre(H + j)) * cp[j] + sig(pre(j)) * math.tanh(pre(2 * H + j))
                      for j in range(H)]
                hn = [sig(pre(3 * H + j)) * math.tanh(cn[j]) for j in range(H)]
                c[l] = cn
            else:
                z = [sig(pre(j)) for j in range(H)]
                r = [sig(pre(H + j)) for j in range(H)]
                rh = [r[j] * hp[j] for j in range(H)]
                hn = [(1 - z[j]) * hp[j] + z[j] * math.tanh(pre(2 * H + j, rh))
                      for j in range(H)]
            h[l] = hn
            x = hn
        logits = [dot(why, v, x) + by[v] for v in range(V)]
        mx = max(logits)
        lse = mx + math.log(sum(math.exp(v - mx) for v in logits))
        res.append(logits[tgt] - lse)
    return res


# Checks serialization round trips, rejection of corrupt blobs, scoring, and
# the bpe pre-tokenizer, encoder and learner.
def selftest():
    gen = torch.Generator().manual_seed(12345)
    rng = random.Random(7)
    failures = 0

    # Records one check's outcome.
    def check(cond, what):
        nonlocal failures
        print("%s: %s" % ("ok" if cond else "FAILED", what), file=sys.stderr)
        if not cond:
            failures += 1

    # True if parse_model rejects blob with FormatError.
    def rejects(blob):
        try:
            parse_model(blob)
        except FormatError:
            return True
        return False

    # Recomputes the trailing CRC after an edit.
    def recrc(body):
        return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)

    # Whether two parsed (or built) models hold the same data.
    def same_model(p, m):
        return (p["vocab"] == m["vocab"] and p["cell"] == m["cell"]
                and p["tokenizer"] == m["tokenizer"] and p["text"] == m["text"]
                and p["merges"] == m["merges"]
                and torch.equal(p["emb"], m["emb"])
                and torch.equal(p["why"], m["why"]) and torch.equal(p["by"], m["by"])
                and all(torch.equal(a[k], b[k]) for a, b in zip(p["layers"], m["layers"])
                        for k in ("wx", "wh", "b")))

    # The sections of a version 2 blob, as a list of [tag, payload] to edit.
    def sections_of(blob):
        return [[t, bytearray(p)] for t, p in v2_sections(blob[:-4])]

    # A version 2 blob from edited sections; count overrides the section count.
    def rebuild(secs, count=None):
        return build_v2([(t, bytes(p)) for t, p in secs], count)

    # The index of the section with tag in secs.
    def where(secs, tag):
        return [t for t, _ in secs].index(tag)

    # The sections of blob with the payload of tag edited by fn (bytearray -> bytearray).
    def edited(blob, tag, fn):
        secs = sections_of(blob)
        i = where(secs, tag)
        secs[i][1] = fn(bytearray(secs[i][1]))
        return rebuild(secs)

    # A bytearray with a u32 (or u64) put at off.
    def put(b, off, value, fmt="<I"):
        struct.pack_into(fmt, b, off, value)
        return b

    for cell in ("rnn", "lstm", "gru"):
        for L in (1, 2):
            V, E, H = 9, 3, 4
            m = random_model(cell, V, E, H, L, gen)
            blob = serialize_model(m)
            P = count_params(cell, V, E, H, L)
            text_bytes = 20 + len(m["text"]["unicode_version"])
            check(len(blob) == V2_HEADER.size + 4 * SECTION_HEAD.size + CONF.size
                  + text_bytes + sum(4 + len(t) for t in m["vocab"]) + 4 * P + 4,
                  "%s L=%d version 2 blob size" % (cell, L))
            check([t for t, _ in sections_of(blob)]
                  == [TAG_CONF, TAG_TEXT, TAG_VOCB, TAG_PARM],
                  "%s L=%d version 2 sections CONF TEXT VOCB PARM" % (cell, L))
            p = parse_model(blob)
            check(p["version"] == 2 and same_model(p, m), "%s L=%d round trip" % (cell, L))
            check(serialize_model(p) == blob, "%s L=%d re-serialization" % (cell, L))

            docs = [[], [rng.randrange(V) for _ in range(6)], [1, 2, V - 1, 1]]
            worst = 0.0
            for d in docs:
                a = score_document(p, d)
                b = score_document_scalar(p, d)
                check(len(a) == len(d) + 1 and all(v <= 0 for v in a),
                      "%s L=%d scores shape" % (cell, L))
                worst = max([worst] + [abs(x - y) for x, y in zip(a, b)])
            check(worst < 1e-12, "%s L=%d tensor vs scalar max diff %.3g" % (cell, L, worst))

            # Version 1 is still read: the same model with the rules of 0.1.
            m1 = dict(m, text=dict(TEXT_V01))
            blob1 = serialize_model(m1, version=1)
            check(len(blob1) == V1_HEADER.size + sum(4 + len(t) for t in m["vocab"])
                  + 4 * P + 4, "%s L=%d version 1 blob size" % (cell, L))
            p1 = parse_model(blob1)
            check(p1["version"] == 1 and same_model(p1, m1),
                  "%s L=%d version 1 read" % (cell, L))
            check(serialize_model(p1, version=1) == blob1,
                  "%s L=%d version 1 re-serialization" % (cell, L))
            check(score_document(p1, docs[1]) == score_document(p, docs[1]),
                  "%s L=%d version 1 scores as version 2" % (cell, L))
            p12 = parse_model(serialize_model(p1))
            check(p12["version"] == 2 and same_model(p12, m1),
                  "%s L=%d version 1 model written as version 2" % (cell, L))
            try:
                serialize_model(m, version=1)
                check(False, "%s version 1 refuses the Unicode rules" % cell)
            except ValueError:
                check(True, "%s version 1 refuses the Unicode rules" % cell)

            # Corruptions of version 1 that must be rejected.
            bad = bytearray(blob1)
            bad[V1_HEADER.size + 10] ^= 1
            check(rejects(bytes(bad)), "%s v1 flipped byte rejected (CRC)" % cell)
            check(rejects(blob1[:-5] + blob1[-4:]), "%s v1 truncated rejected" % cell)
            check(rejects(recrc(blob1[:-4] + b"\0\0\0\0")), "%s v1 trailing bytes rejected" % cell)
            check(rejects(recrc(b"RNNLM\0\n\r" + blob1[8:-4])), "%s v1 bad magic rejected" % cell)
            for version in (0, 2, 3):
                body = put(bytearray(blob1[:-4]), 8, version)
                check(rejects(recrc(bytes(body))), "%s v1 as version %d rejected" % (cell, version))
            body = put(bytearray(blob1[:-4]), 44, P + 1, "<Q")
            check(rejects(recrc(bytes(body))), "%s v1 bad parameter count rejected" % cell)
            body = put(bytearray(blob1[:-4]), 40, 1)
            check(rejects(recrc(bytes(body))), "%s v1 nonzero reserved rejected" % cell)
            body = put(bytearray(blob1[:-4]), 16, 2)
            check(rejects(recrc(bytes(body))), "%s v1 bpe tokenizer rejected" % cell)
            body = bytearray(blob1[:-4])
            body[-4:] = struct.pack("<f", float("nan"))
            check(rejects(recrc(bytes(body))), "%s v1 NaN parameter rejected" % cell)
            dup = dict(m1, vocab=m["vocab"][:-1] + [b"t0"])
            check(rejects(serialize_model(dup, version=1)), "%s v1 duplicate token rejected" % cell)

            # Corruptions of version 2 that must be rejected.
            bad = bytearray(blob)
            bad[len(blob) // 2] ^= 1
            check(rejects(bytes(bad)), "%s flipped byte rejected (CRC)" % cell)
            check(rejects(blob[:-5] + blob[-4:]), "%s truncated rejected" % cell)
            check(rejects(recrc(blob[:-4] + b"\0")), "%s trailing byte rejected" % cell)
            check(rejects(recrc(b"RNNLM\0\n\r" + blob[8:-4])), "%s bad magic rejected" % cell)
            for version in (0, 1, 3):
                body = put(bytearray(blob[:-4]), 8, version)
                check(rejects(recrc(bytes(body))), "%s v2 as version %d rejected" % (cell, version))
            secs = sections_of(blob)
            for n in (3, 5, 65):
                check(rejects(rebuild(secs, count=n)), "%s section count %d rejected" % (cell, n))
            check(rejects(rebuild(secs[1:2] + secs[0:1] + secs[2:])),
                  "%s CONF not first rejected" % cell)
            for i, tag in ((1, TAG_TEXT), (2, TAG_VOCB), (3, TAG_PARM)):
                check(rejects(rebuild(secs[:i] + secs[i + 1:])),
                      "%s missing %s rejected" % (cell, tag.decode()))
                check(rejects(rebuild(secs + [secs[i]])),
                      "%s repeated %s rejected" % (cell, tag.decode()))
            check(rejects(rebuild(secs + [secs[0]])), "%s repeated CONF rejected" % cell)
            check(rejects(rebuild(secs + [[b"ZZZZ", b"x"]])),
                  "%s unknown upper-case section rejected" % cell)
            check(rejects(rebuild(secs + [[b"0abc", b""]])),
                  "%s unknown section not starting with a letter rejected" % cell)
            check(rejects(rebuild(secs + [[b"x\xffyz", b""]])),
                  "%s non-ASCII tag rejected" % cell)
            check(rejects(rebuild(secs + [[TAG_MERG, struct.pack("<I", 0)]])),
                  "%s MERG in a char model rejected" % cell)
            skipped = rebuild(secs[:2] + [[b"xtra", b"anything"]] + secs[2:]
                              + [[b"zzzz", b""]])
            check(not rejects(skipped) and same_model(parse_model(skipped), m),
                  "%s unknown lower-case sections skipped" % cell)
            check(rejects(rebuild(secs + [[b"xtra", b"a"], [b"xtra", b"b"]])),
                  "%s repeated lower-case section rejected" % cell)
            trunc = rebuild(secs)[:-4]
            body = put(bytearray(trunc), V2_HEADER.size + 4, CONF.size + 1, "<Q")
            check(rejects(recrc(bytes(body))), "%s CONF length past its bytes rejected" % cell)
            body = put(bytearray(trunc), len(trunc) - 4 * P - 8, 4 * P + 1, "<Q")
            check(rejects(recrc(bytes(body))), "%s PARM length past the end rejected" % cell)
            # CONF
            for size in (35, 37):
                check(rejects(edited(blob, TAG_CONF, lambda b, n=size: (b + b"\0\0")[:n])),
                      "%s CONF of %d bytes rejected" % (cell, size))
            for off, value, what in ((0, 3, "cell 3"), (4, 3, "tokenizer 3"),
                                     (8, 2, "flag bit 1"), (12, 2, "V=2"),
                                     (12, MAX_VOCAB + 1, "V too large"), (16, 0, "E=0"),
                                     (20, MAX_DIM + 1, "H too large"), (24, 0, "L=0"),
                                     (24, MAX_LAYERS + 1, "L=17"), (28, P + 1, "P+1"),
                                     (28, P - 1, "P-1")):
                fmt = "<Q" if off == 28 else "<I"
                check(rejects(edited(blob, TAG_CONF, lambda b, o=off, v=value, f=fmt:
                                     put(b, o, v, f))),
                      "%s CONF with %s rejected" % (cell, what))
            check(not rejects(edited(blob, TAG_CONF, lambda b: put(b, 8, 1))),
                  "%s CONF with lowercase read" % cell)
            # TEXT
            for off, value, what in ((0, 2, "rules 2"), (4, 3, "normalize 3"),
                                     (8, 4, "flag bit 2")):
                check(rejects(edited(blob, TAG_TEXT, lambda b, o=off, v=value: put(b, o, v))),
                      "%s TEXT with %s rejected" % (cell, what))

            # A TEXT payload from its fields.
            def text_payload(rules, norm, flags, filters, uver):
                return (struct.pack("<III", rules, norm, flags)
                        + struct.pack("<I", len(filters)) + filters
                        + struct.pack("<I", len(uver)) + uver)

            for args, ok, what in (
                    ((1, 2, 3, "é-".encode(), b"15.0.0"), True, "every option"),
                    ((0, 0, 0, b"", b""), True, "the rules of 0.1"),
                    ((1, 0, 2, b"x" * 255, b"1" * 31), True, "the longest strings"),
                    ((1, 0, 2, b"x" * 256, b"15.0.0"), False, "256 bytes of filters"),
                    ((1, 0, 0, b"", b"1" * 32), False, "a 32-byte Unicode version"),
                    ((1, 0, 2, b"\xff", b"15.0.0"), False, "filters not UTF-8"),
                    ((1, 0, 0, b"", b"\xc3"), False, "a version not UTF-8"),
                    ((0, 1, 0, b"", b""), False, "the rules of 0.1 normalised"),
                    ((0, 0, 1, b"", b""), False, "the rules of 0.1 with split_on_punctuation"),
                    ((0, 0, 2, b"", b""), False, "the rules of 0.1 with filters"),
                    ((0, 0, 0, b"", b"15.0.0"), False, "the rules of 0.1 with a version")):
                got = edited(blob, TAG_TEXT, lambda b, a=args: bytearray(text_payload(*a)))
                check(rejects(got) != ok, "%s TEXT with %s %s"
                      % (cell, what, "read" if ok else "rejected"))
                if ok:
                    check(serialize_model(parse_model(got)) == got,
                          "%s TEXT with %s re-serialized" % (cell, what))
            check(rejects(edited(blob, TAG_TEXT, lambda b: b + b"\0")),
                  "%s TEXT with a trailing byte rejected" % cell)
            check(rejects(edited(blob, TAG_TEXT, lambda b: b[:-1])),
                  "%s truncated TEXT rejected" % cell)
            # VOCB
            check(rejects(edited(blob, TAG_VOCB, lambda b: b + b"\0")),
                  "%s VOCB with a trailing byte rejected" % cell)
            check(rejects(edited(blob, TAG_VOCB, lambda b: b[:-1])),
                  "%s truncated VOCB rejected" % cell)
            for vocab, what in (
                    (m["vocab"][:-1] + [b"t0"], "a duplicate entry"),
                    (m["vocab"][:-1] + [b""], "an empty entry"),
                    (m["vocab"][:-1] + [b"x" * 1025], "an entry of 1025 bytes"),
                    (m["vocab"][:-1] + [b"\xe4\xb8"], "an entry not UTF-8"),
                    (m["vocab"][:-1] + [b"\xed\xa0\x80"], "an encoded surrogate"),
                    ([b"<unk>", b"<eod>"] + m["vocab"][2:], "<unk> and <eod> swapped")):
                check(rejects(serialize_model(dict(m, vocab=vocab))),
                      "%s VOCB with %s rejected" % (cell, what))
            long_ok = dict(m, vocab=m["vocab"][:-1] + [b"x" * 1024])
            check(not rejects(serialize_model(long_ok)), "%s VOCB entry of 1024 bytes read" % cell)
            # PARM
            check(rejects(edited(blob, TAG_PARM, lambda b: b[:-4])),
                  "%s PARM one float short rejected" % cell)
            check(rejects(edited(blob, TAG_PARM, lambda b: b + b"\0\0\0\0")),
                  "%s PARM one float long rejected" % cell)
            for v in (float("nan"), float("inf"), float("-inf")):
                check(rejects(edited(blob, TAG_PARM, lambda b, x=v:
                                     b[:-4] + struct.pack("<f", x))),
                      "%s %r parameter rejected" % (cell, v))

    # A uniform model must give log(1/V) everywhere.
    m = random_model("lstm", 5, 2, 3, 1, gen)
    m["why"].zero_()
    m["by"].zero_()
    s = score_document(parse_model(serialize_model(m)), [2, 3, 4])
    check(all(abs(v + math.log(5)) < 1e-12 for v in s), "uniform model gives -log V")

    # ---- text rules and bpe ----
    uni = {"text": text_unicode(), "lowercase": False}
    check(prepare_text(uni, b"a\xe4\xb8b\xff") == "a\ufffd\ufffdb\ufffd",
          "each ill-formed byte is U+FFFD")
    folded = dict(uni, lowercase=True, text=text_unicode(normalize=2))
    check(prepare_text(folded, "Straße ẞ ＡＢＣ ﬁ É") == "strasse ss abc fi é",
          "NFKC and full case folding")
    check(prepare_text(dict(uni, text=text_unicode(normalize=1)), "e\u0301") == "é", "NFC")
    for text, want in (
            ("", []),
            ("Hello,  world!", ["Hello", ",", " ", " world", "!"]),
            (" a", [" a"]), ("a ", ["a", " "]), ("  ", ["  "]),
            ("a\t b", ["a", "\t", " b"]), ("a \tb", ["a", " \t", "b"]),
            ("a , b", ["a", " ,", " b"]), ("3.14", ["3", ".", "14"]),
            ("naïve café", ["naïve", " café"]), ("e\u0301x", ["e\u0301x"]),
            ("a\u00a0b", ["a", "\u00a0", "b"]), ("a \u00a0b", ["a", " \u00a0", "b"]),
            ("a\u00a0 b", ["a", "\u00a0", " b"]),
            ("a\nb\r\n", ["a", "\n", "b", "\r\n"]), ("a\x85b", ["a", "\x85", "b"]),
            ("a\x1fb\x0bc\x0cd", ["a", "\x1f", "b", "\x0b", "c", "\x0c", "d"]),
            ("a\u2028b\u3000c", ["a", "\u2028", "b", "\u3000", "c"]),
            ("猫坐在垫子上。 我们", ["猫坐在垫子上", "。", " 我们"]),
            ("x²½", ["x²½"]), ("$5 €", ["$", "5", " €"]), ("a\x00b", ["a", "\x00", "b"]),
            ("x" * 300, ["x" * 256, "x" * 44]),
            ("é" * 200, ["é" * 128, "é" * 72]),
            ("中" * 100, ["中" * 85, "中" * 15]),
            (" " + "a" * 300, [" " + "a" * 255, "a" * 45]),
            ("a" + " " * 300 + "b", ["a", " " * 256, " " * 43, " b"]),
            ("a" + " " * 257 + "b", ["a", " " * 256, " b"]),
            ("." * 257, ["." * 256, "."])):
        got = [p.decode("utf-8") for p in bpe_pieces(text)]
        check(got == want, "bpe pieces of %r: %s" % (
            text if len(text) < 24 else text[:12] + "...(%d)" % len(text),
            [g if len(g) < 24 else "(%d bytes)" % len(g.encode()) for g in got]))

    # Encoding with hand-made merges.
    base = [b"<eod>", b"<unk>"] + [bytes([b]) for b in range(256)]
    B = lambda ch: BPE_BYTE0 + ord(ch)
    vocab = base + [b"bc", b"ab", b"abc", b"aa", b"aaaa"]
    merges = [(B("b"), B("c")), (B("a"), B("b")), (259, B("c")), (B("a"), 258),
              (B("a"), B("a")), (261, 261)]
    enc = Bpe(vocab, merges)
    for piece, want in ((b"abc", [260]), (b"bcab", [258, 259]), (b"aaaa", [262]),
                        (b"aaa", [261, B("a")]), (b"aaaaa", [262, B("a")]),
                        (b"ab", [259]), (b"cab", [B("c"), 259]), (b"", []),
                        (b"x\xff", [B("x"), BPE_BYTE0 + 255])):
        got = enc.encode_piece(piece)
        check(got == want, "bpe encoding of %r: %r" % (piece, got))

    # Learning: weighted counts, ties, the stop, reserved spellings.
    lm = {"text": text_unicode(), "lowercase": False}
    v, mg = learn_bpe(lm, ["ab ab ab", "abc"], 1000)
    check(mg == [(B("a"), B("b")), (B(" "), 258)] and v[258:] == [b"ab", b" ab"],
          "bpe learns by weighted pair counts and stops below two: %r" % (mg,))
    v, mg = learn_bpe(lm, ["ab cd", "ab cd"], 259)
    check(mg == [(B(" "), B("c"))] and len(v) == 259,
          "bpe ties go to the smaller first id; max_vocab stops: %r" % (mg,))
    v, mg = learn_bpe_pieces({b"<eod>": 5}, 1000)
    check(v[258:] == [b"<e", b"d>", b"od>"] and b"<eod>" not in v[2:],
          "bpe never merges into <eod>: %r" % (v[258:],))
    v, mg = learn_bpe_pieces({b"aaaa": 3}, 1000)
    check(mg == [(B("a"), B("a")), (258, 258)], "bpe joins pairs left to right: %r" % (mg,))
    v, mg = learn_bpe_pieces({b"aaa": 1, b"bc": 2}, 1000)
    check(mg[:1] == [(B("a"), B("a"))], "bpe counts every position of a pair: %r" % (mg,))

    # A bpe model: learned, written, read back, re-encoded.
    texts = ["The cat sat on the mat.", "The cat ate the rat.", "Le café est là.",
             "猫坐在垫子上。", "the  the  the"]
    vocab, merges = learn_bpe(lm, texts, 300)
    V = len(vocab)
    m = random_model("gru", V, 3, 4, 1, gen, tokenizer="bpe", vocab=vocab, merges=merges)
    blob = serialize_model(m)
    check([t for t, _ in sections_of(blob)]
          == [TAG_CONF, TAG_TEXT, TAG_VOCB, TAG_MERG, TAG_PARM],
          "bpe sections CONF TEXT VOCB MERG PARM")
    p = parse_model(blob)
    check(same_model(p, m) and serialize_model(p) == blob, "bpe round trip (%d merges)" % len(merges))
    ids = encode_text(p, texts[0])
    check(b"".join(vocab[t] for t in ids) == texts[0].encode() and len(ids) < len(texts[0]),
          "bpe encoding decodes back: %r" % ids)
    check(all(t >= BPE_BYTE0 for tx in texts for t in encode_text(p, tx)), "bpe never gives <unk>")
    d = encode_text(p, texts[2])
    check(len(score_document(p, d)) == len(d) + 1, "bpe model scores")
    try:
        serialize_model(m, version=1)
        check(False, "bpe cannot be written as version 1")
    except ValueError:
        check(True, "bpe cannot be written as version 1")
    M = len(merges)
    secs = sections_of(blob)
    i = where(secs, TAG_MERG)
    check(rejects(rebuild(secs[:i] + secs[i + 1:])), "bpe without MERG rejected")
    check(rejects(rebuild(secs + [secs[i]])), "bpe with two MERG rejected")
    a0, b0 = merges[0]
    for fn, what in (
            (lambda b: b[:-1], "a truncated MERG"),
            (lambda b: b + b"\0", "a MERG with a trailing byte"),
            (lambda b: put(b, 0, M + 1), "a MERG count too large"),
            (lambda b: put(b, 0, M - 1), "a MERG count too small"),
            (lambda b: put(b, 4, UNK), "a merge naming <unk>"),
            (lambda b: put(b, 8, EOD), "a merge naming <eod>"),
            (lambda b: put(b, 4, V), "a merge naming token V"),
            (lambda b: put(b, 8, B("~")), "a merge spelling no token"),
            (lambda b: put(b + struct.pack("<II", a0, b0), 0, M + 1), "a repeated merge")):
        check(rejects(edited(blob, TAG_MERG, fn)), "bpe with %s rejected" % what)
    check(not rejects(edited(blob, TAG_MERG, lambda b: put(b[:4 + 8 * (M - 1)], 0, M - 1))),
          "bpe with its last merge left out read")
    swapped = list(vocab)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    check(rejects(serialize_model(dict(m, vocab=swapped))), "bpe with bytes out of order rejected")
    short = random_model("rnn", 200, 2, 2, 1, gen, tokenizer="bpe", vocab=base[:200], merges=[])
    check(rejects(serialize_model(short)), "bpe with fewer than 258 tokens rejected")
    odd = random_model("rnn", len(base) + 1, 2, 2, 1, gen, tokenizer="bpe",
                       vocab=base + [b"\xff\xfe"], merges=[(BPE_BYTE0 + 255, BPE_BYTE0 + 254)])
    check(not rejects(serialize_model(odd)), "bpe entries need not be UTF-8")
    check(rejects(edited(blob, TAG_TEXT, lambda b: bytearray(
        struct.pack("<IIIII", 0, 0, 0, 0, 0)))), "bpe with the rules of 0.1 rejected")
    # A merge whose spelling is the token <eod> ("<eo" + "d>").
    vocab2 = base + [b"<eo", b"d>"]
    odd = random_model("rnn", len(vocab2), 2, 2, 1, gen, tokenizer="bpe", vocab=vocab2,
                       merges=[(258, 259)])
    check(rejects(serialize_model(odd)), "bpe merge spelling <eod> rejected")
    odd["merges"] = []
    check(not rejects(serialize_model(odd)), "bpe tokens that no merge makes read")

    print("selftest: %s" % ("FAILED (%d)" % failures if failures else "passed"),
          file=sys.stderr)
    return 1 if failures else 0


# What a blob holds, for the tests: the fields, and whether writing it again
# gives the same bytes.
def describe(m, blob):
    return {"version": m["version"], "cell": m["cell"], "tokenizer": m["tokenizer"],
            "lowercase": m["lowercase"], "V": m["V"], "E": m["E"], "H": m["H"],
            "L": m["L"], "P": m["P"], "text": m["text"],
            "merges": None if m["merges"] is None else len(m["merges"]),
            "reserialized": serialize_model(m, version=m["version"]) == blob}


# Learns bpe from texts under model m's rules and compares with m's tokens.
def learn_compare(m, texts, max_vocab):
    vocab, merges = learn_bpe(m, texts, max_vocab)
    first = None
    for r in range(max(len(merges), len(m["merges"] or []))):
        a = merges[r] if r < len(merges) else None
        b = m["merges"][r] if m["merges"] and r < len(m["merges"]) else None
        if a != b:
            first = {"merge": r, "reference": a, "model": b}
            break
    return {"same": vocab == m["vocab"] and merges == m["merges"],
            "V": len(vocab), "merges": len(merges), "first_difference": first}


# Command-line entry point.
def main():
    ap = argparse.ArgumentParser(description="Reference reader and scorer for rnnlm models.")
    ap.add_argument("model", nargs="?", help="model blob file")
    ap.add_argument("docs", nargs="?", help="JSON list of token-id lists (or of texts)")
    ap.add_argument("--selftest", action="store_true", help="run the self-test")
    ap.add_argument("--info", action="store_true", help="describe the model")
    ap.add_argument("--encode", action="store_true",
                    help="DOCS.json is a list of texts: write their token ids")
    ap.add_argument("--learn", action="store_true",
                    help="DOCS.json is a list of training texts: learn bpe, compare")
    ap.add_argument("--max-vocab", type=int, help="max_vocab for --learn")
    args = ap.parse_args()
    if args.selftest:
        torch.set_grad_enabled(False)
        return selftest()
    if not args.model or (not args.info and not args.docs):
        ap.error("MODEL.bin and DOCS.json are required")
    with open(args.model, "rb") as f:
        blob = f.read()
    try:
        model = parse_model(blob)
    except FormatError as e:
        print("invalid model: %s" % e, file=sys.stderr)
        return 2
    if args.info:
        result = describe(model, blob)
    else:
        with open(args.docs, encoding="utf-8") as f:
            docs = json.load(f)
        if isinstance(docs, dict):
            docs = docs["docs"]
        if args.encode:
            if model["text"]["rules"] != RULES_UNICODE:
                print("the reference tokenizes only with the Unicode rules (1)", file=sys.stderr)
                return 3
            bpe = Bpe(model["vocab"], model["merges"]) if model["tokenizer"] == "bpe" else None
            result = {"ids": [encode_text(model, t, bpe) for t in docs]}
        elif args.learn:
            if model["tokenizer"] != "bpe" or args.max_vocab is None:
                ap.error("--learn needs a bpe model and --max-vocab")
            if model["text"]["rules"] != RULES_UNICODE:
                print("a bpe model with the rules of 0.1", file=sys.stderr)
                return 3
            result = learn_compare(model, docs, args.max_vocab)
        else:
            torch.set_grad_enabled(False)
            result = {"docs": [score_document(model, d) for d in docs]}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

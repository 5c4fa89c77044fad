#!/usr/bin/python3
"""Independent reference scorer for rnnlm model blobs.

Reads a model in the binary format of doc/format.md and scores documents
given as lists of token ids, writing the log-probability of every predicted
token.  The recurrent cells are written out with plain tensor operations in
float64 (no library recurrent modules), straight from the equations in
doc/format.md, so the result can be compared with the extension's own.

Usage:
    reference.py MODEL.bin DOCS.json    DOCS.json: [[id, ...], ...]
                                        (or {"docs": [[id, ...], ...]})
    reference.py --selftest             checks the parser and the cells

Output (stdout): {"docs": [[logprob, ...], ...]}, one list per document with
len(document) + 1 entries (each token, then the final <eod>).
"""

import argparse
import array
import json
import math
import random
import struct
import sys
import zlib

import torch

MAGIC = b"RNNLM\x00\r\n"
VERSION = 1
CELLS = {0: "rnn", 1: "lstm", 2: "gru"}
TOKENIZERS = {0: "word", 1: "char"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
EOD, UNK = 0, 1
HEADER = struct.Struct("<8sIIIIIIIIIQ")  # magic .. reserved, then P
MAX_VOCAB, MAX_DIM, MAX_LAYERS, MAX_TOKEN_BYTES = 2000000, 16384, 16, 1024


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


# Parses and validates a model blob; returns a dict of config, vocab, weights.
def parse_model(blob):
    if len(blob) < HEADER.size + 4:
        raise FormatError("blob too short: %d bytes" % len(blob))
    body, stored_crc = blob[:-4], struct.unpack("<I", blob[-4:])[0]
    actual_crc = zlib.crc32(body) & 0xFFFFFFFF
    if actual_crc != stored_crc:
        raise FormatError("CRC mismatch: stored %08x, computed %08x"
                          % (stored_crc, actual_crc))
    (magic, version, cell_id, tok_id, flags, V, E, H, L, reserved,
     P) = HEADER.unpack_from(body, 0)
    if magic != MAGIC:
        raise FormatError("bad magic %r" % magic)
    if version != VERSION:
        raise FormatError("unsupported version %d" % version)
    if cell_id not in CELLS:
        raise FormatError("unknown cell %d" % cell_id)
    if tok_id not in TOKENIZERS:
        raise FormatError("unknown tokenizer %d" % tok_id)
    if flags & ~1:
        raise FormatError("unknown flags %#x" % flags)
    if reserved != 0:
        raise FormatError("reserved field is %d" % reserved)
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

    # Vocabulary: V length-prefixed UTF-8 strings.
    pos = HEADER.size
    vocab = []
    for i in range(V):
        if pos + 4 > len(body):
            raise FormatError("truncated in vocabulary entry %d" % i)
        n = struct.unpack_from("<I", body, pos)[0]
        pos += 4
        if not 1 <= n <= MAX_TOKEN_BYTES:
            raise FormatError("vocabulary entry %d has length %d" % (i, n))
        if pos + n > len(body):
            raise FormatError("truncated in vocabulary entry %d" % i)
        try:
            vocab.append(body[pos:pos + n].decode("utf-8"))
        except UnicodeDecodeError as e:
            raise FormatError("vocabulary entry %d is not UTF-8: %s" % (i, e))
        pos += n
    if vocab[EOD] != "<eod>" or vocab[UNK] != "<unk>":
        raise FormatError("entries 0 and 1 are %r, %r, not <eod>, <unk>"
                          % (vocab[EOD], vocab[UNK]))
    if len(set(vocab)) != V:
        raise FormatError("duplicate vocabulary entries")

    # Parameters: exactly P floats, then the checksum.
    if len(body) - pos != 4 * P:
        raise FormatError("%d bytes of parameters, expected %d"
                          % (len(body) - pos, 4 * P))
    flat = floats_from_bytes(body[pos:])
    if not torch.isfinite(flat).all():
        raise FormatError("non-finite parameter")

    G = GATES[cell]

    # Takes the next rows*cols floats of the flat parameter vector.
    def take(rows, cols=None):
        nonlocal off
        size = rows * (cols or 1)
        t = flat[off:off + size]
        off += size
        return t.view(rows, cols) if cols else t

    off = 0
    emb = take(V, E)
    layers = []
    for layer in range(L):
        in_dim = E if layer == 0 else H
        layers.append({"wx": take(G * H, in_dim), "wh": take(G * H, H),
                       "b": take(G * H)})
    why = take(V, H)
    by = take(V)
    assert off == P
    return {"cell": cell, "tokenizer": TOKENIZERS[tok_id],
            "lowercase": bool(flags & 1), "V": V, "E": E, "H": H, "L": L,
            "vocab": vocab, "emb": emb, "layers": layers, "why": why, "by": by}


# Serializes a model dict (as parse_model returns) into the blob format.
def serialize_model(m):
    cell_id = {v: k for k, v in CELLS.items()}[m["cell"]]
    tok_id = {v: k for k, v in TOKENIZERS.items()}[m["tokenizer"]]
    V, E, H, L = m["V"], m["E"], m["H"], m["L"]
    P = count_params(m["cell"], V, E, H, L)
    out = bytearray(HEADER.pack(MAGIC, VERSION, cell_id, tok_id,
                                1 if m["lowercase"] else 0, V, E, H, L, 0, P))
    for tok in m["vocab"]:
        raw = tok.encode("utf-8")
        out += struct.pack("<I", len(raw)) + raw
    parts = [m["emb"].reshape(-1)]
    for lp in m["layers"]:
        parts += [lp["wx"].reshape(-1), lp["wh"].reshape(-1), lp["b"]]
    parts += [m["why"].reshape(-1), m["by"]]
    flat = torch.cat(parts)
    assert flat.numel() == P
    out += floats_to_bytes(flat)
    out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
    return bytes(out)


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


# Builds a random model dict with the given shapes.
def random_model(cell, V, E, H, L, gen, scale=0.5):
    G = GATES[cell]

    # Uniform random float64 values in [-scale, scale), rounded to float32.
    def rnd(*shape):
        t = (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale
        return t.to(torch.float32).to(torch.float64)

    vocab = ["<eod>", "<unk>"] + ["t%d" % i for i in range(V - 3)] + ["é中"]
    return {"cell": cell, "tokenizer": "char", "lowercase": False,
            "V": V, "E": E, "H": H, "L": L, "vocab": vocab,
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


# Checks serialization round trips, rejection of corrupt blobs, and scoring.
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

    for cell in ("rnn", "lstm", "gru"):
        for L in (1, 2):
            V, E, H = 9, 3, 4
            m = random_model(cell, V, E, H, L, gen)
            blob = serialize_model(m)
            P = count_params(cell, V, E, H, L)
            check(len(blob) == HEADER.size + sum(4 + len(t.encode()) for t in m["vocab"])
                  + 4 * P + 4, "%s L=%d blob size" % (cell, L))
            p = parse_model(blob)
            same = (p["vocab"] == m["vocab"] and p["cell"] == cell
                    and torch.equal(p["emb"], m["emb"])
                    and torch.equal(p["why"], m["why"]) and torch.equal(p["by"], m["by"])
                    and all(torch.equal(a[k], b[k]) for a, b in zip(p["layers"], m["layers"])
                            for k in ("wx", "wh", "b")))
            check(same, "%s L=%d round trip" % (cell, L))
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

            # Corruptions that must be rejected.
            bad = bytearray(blob)
            bad[HEADER.size + 10] ^= 1
            check(rejects(bytes(bad)), "%s flipped byte rejected (CRC)" % cell)
            check(rejects(blob[:-5] + blob[-4:]), "%s truncated rejected" % cell)
            check(rejects(recrc(blob[:-4] + b"\0\0\0\0")), "%s trailing bytes rejected" % cell)
            check(rejects(recrc(b"RNNLM\0\n\r" + blob[8:-4])), "%s bad magic rejected" % cell)
            body = bytearray(blob[:-4])
            struct.pack_into("<I", body, 8, 2)
            check(rejects(recrc(bytes(body))), "%s bad version rejected" % cell)
            body = bytearray(blob[:-4])
            struct.pack_into("<Q", body, 44, P + 1)
            check(rejects(recrc(bytes(body))), "%s bad parameter count rejected" % cell)
            body = bytearray(blob[:-4])
            struct.pack_into("<I", body, 40, 1)
            check(rejects(recrc(bytes(body))), "%s nonzero reserved rejected" % cell)
            body = bytearray(blob[:-4])
            body[-4:] = struct.pack("<f", float("nan"))
            check(rejects(recrc(bytes(body))), "%s NaN parameter rejected" % cell)
            dup = dict(m, vocab=m["vocab"][:-1] + ["t0"])
            check(rejects(serialize_model(dup)), "%s duplicate token rejected" % cell)

    # A uniform model must give log(1/V) everywhere.
    m = random_model("lstm", 5, 2, 3, 1, gen)
    m["why"].zero_()
    m["by"].zero_()
    s = score_document(parse_model(serialize_model(m)), [2, 3, 4])
    check(all(abs(v + math.log(5)) < 1e-12 for v in s), "uniform model gives -log V")

    print("selftest: %s" % ("FAILED (%d)" % failures if failures else "passed"),
          file=sys.stderr)
    return 1 if failures else 0


# Command-line entry point.
def main():
    ap = argparse.ArgumentParser(description="Reference scorer for rnnlm models.")
    ap.add_argument("model", nargs="?", help="model blob file")
    ap.add_argument("docs", nargs="?", help="JSON list of token-id lists")
    ap.add_argument("--selftest", action="store_true", help="run the self-test")
    args = ap.parse_args()
    if args.selftest:
        return selftest()
    if not args.model or not args.docs:
        ap.error("MODEL.bin and DOCS.json are required")
    with open(args.model, "rb") as f:
        blob = f.read()
    with open(args.docs, encoding="utf-8") as f:
        docs = json.load(f)
    if isinstance(docs, dict):
        docs = docs["docs"]
    try:
        model = parse_model(blob)
    except FormatError as e:
        print("invalid model: %s" % e, file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    result = {"docs": [score_document(model, d) for d in docs]}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

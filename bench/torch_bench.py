#!/usr/bin/python3
"""The PyTorch side of the benchmark, and the data preparation for both sides.

Subcommands (each prints "key<TAB>value" lines on stdout, values may be JSON):

  prepare   cuts the corpus into the files bench/run.sh loads into tables:
            W and C training documents (the first lines of the corpus, one
            document per non-empty line), the per-row scoring rows (fixed-size
            pieces of the end of the corpus, which no model trains on) and the
            rows of the parallel-query table.
  train     trains the same model as rnnlm_train with the same options on the
            same token stream, for one epoch, and saves it; reports tokens/s,
            losses and the process's peak memory.
  score-batch   scores the validation documents of a model in padded batches
            of documents (no grad), as rnnlm_evaluate scores them (each
            document from the zero state, <eod> first, <eod> last).
  score-rows    scores rows one at a time (batch 1), as rnnlm_perplexity does
            once per row, and a one-character row many times.

The model is embedding -> stacked nn.LSTM / nn.GRU -> linear -> softmax
cross-entropy, initialised as rnnlm initialises its own (src/core/model.c).
nn.GRU applies the reset gate after the recurrent product, r * (W h + b),
where rnnlm applies it before, W (r * h): the same cost, slightly different
function.  Training is truncated BPTT over the token stream cut into
batch_size contiguous streams and chunks of seq_len steps, the hidden state
carried from chunk to chunk, Adam (0.9, 0.999, 1e-8), gradient clipping by
global L2 norm: the procedure of src/core/train.c.

The tokenizers replicate rnnlm's for this ASCII corpus: word = lowercase,
remove ASCII punctuation, split on whitespace; char = one token per code
point, case kept.  The vocabulary is every token of the training documents
by descending frequency, ties in first-seen order, after <eod> (0) and <unk>
(1), cut at max_vocab; the stream is <eod>, then each document followed by
<eod>; the last 10% of the documents (rounded) are the validation set.

Threads: torch.set_num_threads(--torch-threads, 1 unless given); the caller
sets OPENBLAS_NUM_THREADS.  bench/run.sh trains and scores with 1 and with N
intra-op threads and keeps the better, PyTorch's best setting.  --bf16 runs
training and batched scoring under torch.autocast("cpu", torch.bfloat16)
(oneDNN's bf16 kernels in Debian's build), with fp32 master weights.
--tag is appended to the result's key.
"""

import contextlib

import argparse
import json
import math
import re
import string
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

EOD, UNK = 0, 1
PUNCT_TABLE = str.maketrans("", "", string.punctuation)


def log(msg):
    print("   [pytorch] " + msg, file=sys.stderr, flush=True)


def emit(key, value):
    """One result line; dicts and lists as JSON."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    print("%s\t%s" % (key, value), flush=True)


def proc_status_kb(field):
    """A field of /proc/self/status in kB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


# ---------------------------------------------------------------- data


def read_docs(path):
    """Documents of a file written by prepare (COPY text format, one per line)."""
    unescape = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
    with open(path, encoding="utf-8") as f:
        return [re.sub(r"\\[\\tnr]", lambda m: unescape[m.group(0)], line.rstrip("\n"))
                for line in f]


def write_docs(path, docs):
    """Writes documents one per line in COPY text format."""
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(d.replace("\\", "\\\\").replace("\t", "\\t")
                    .replace("\n", "\\n").replace("\r", "\\r") + "\n")


def split_tokens(tokenizer, text):
    """rnnlm's tokenizers, for ASCII text."""
    if tokenizer == "char":
        return list(text)
    return text.lower().translate(PUNCT_TABLE).split()


def validation_docs(fraction, ndocs):
    """How many documents rnnlm_train holds out (src/pg/train.c)."""
    if fraction <= 0 or ndocs < 2:
        return 0
    k = int(math.floor(fraction * ndocs + 0.5))
    return min(max(k, 1), ndocs - 1)


def build_vocab(tokenizer, train_docs, max_vocab):
    """Token list: <eod>, <unk>, then by descending count, ties first-seen."""
    counts, first = {}, {}
    for d in train_docs:
        for t in split_tokens(tokenizer, d):
            if t not in counts:
                counts[t] = 0
                first[t] = len(first)
            counts[t] += 1
    ranked = sorted(counts, key=lambda t: (-counts[t], first[t]))
    if max_vocab > 0:
        ranked = ranked[:max_vocab]
    return ["<eod>", "<unk>"] + ranked


def to_stream(tokenizer, docs, stoi):
    """<eod>, then each document's ids followed by <eod>."""
    ids = [EOD]
    for d in docs:
        ids.extend(stoi.get(t, UNK) for t in split_tokens(tokenizer, d))
        ids.append(EOD)
    return ids


def cmd_prepare(a):
    with open(a.data, encoding="utf-8") as f:
        text = f.read()
    lines = [l for l in text.split("\n") if l != ""]
    write_docs(a.out + "/w_docs.txt", lines[:a.w_lines])
    write_docs(a.out + "/c_docs.txt", lines[:a.c_lines])
    # Scoring rows: the end of the corpus with whitespace runs collapsed,
    # cut into pieces of row_chars characters.
    need = a.rows * a.row_chars
    tail = " ".join(text[-(need * 2 + 1000):].split())[-need:]
    rows = [tail[i:i + a.row_chars] for i in range(0, need, a.row_chars)]
    if len(rows) != a.rows or any(len(r) != a.row_chars for r in rows):
        raise SystemExit("the corpus is too short for %d rows of %d characters" % (a.rows, a.row_chars))
    write_docs(a.out + "/rows.txt", rows)
    # The parallel-query table: the corpus's lines, repeated as needed.
    par = [lines[i % len(lines)] for i in range(a.par_rows)]
    write_docs(a.out + "/par.txt", par)
    for name, n in (("w", a.w_lines), ("c", a.c_lines)):
        docs = lines[:n]
        emit("data.%s.lines" % name, len(docs))
        emit("data.%s.val_docs" % name, validation_docs(a.val_fraction, len(docs)))
        emit("data.%s.chars" % name, sum(len(d) for d in docs))
    emit("data.rows", len(rows))
    emit("data.row_chars", a.row_chars)
    emit("data.par_rows", len(par))
    emit("data.par_chars", sum(len(p) for p in par))


# ---------------------------------------------------------------- model


class LM(nn.Module):
    """embedding -> stacked LSTM/GRU (sequence-first) -> linear."""

    def __init__(self, cell, V, E, H, L):
        super().__init__()
        self.cell, self.H = cell, H
        self.emb = nn.Embedding(V, E)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(E, H, L)
        self.out = nn.Linear(H, V)

    def init_like_rnnlm(self, seed):
        """rnnlm's initialisation: embedding U(+-sqrt 3), matrices U(+-1/sqrt H),
        biases 0, LSTM forget-gate bias 1 (the second of the i, f, g, o blocks)."""
        g = torch.Generator().manual_seed(seed)
        a = 1.0 / math.sqrt(self.H)
        with torch.no_grad():
            self.emb.weight.uniform_(-math.sqrt(3.0), math.sqrt(3.0), generator=g)
            for name, p in self.rnn.named_parameters():
                if name.startswith("weight"):
                    p.uniform_(-a, a, generator=g)
                else:
                    p.zero_()
                    if self.cell == "lstm" and name.startswith("bias_ih"):
                        p[self.H:2 * self.H] = 1.0
            self.out.weight.uniform_(-a, a, generator=g)
            self.out.bias.zero_()

    def forward(self, x, state=None):
        y, state = self.rnn(self.emb(x), state)
        return self.out(y), state


def detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def stream_batches(ids, B):
    """Inputs and targets [per_stream, B]: stream b is ids[b*per_stream ...]."""
    per_stream = (len(ids) - 1) // B
    t = torch.tensor(ids, dtype=torch.long)
    inp = t[:per_stream * B].view(B, per_stream).t().contiguous()
    tgt = t[1:per_stream * B + 1].view(B, per_stream).t().contiguous()
    return inp, tgt, per_stream


def evaluate_stream(model, ids, B, S):
    """Mean loss over a stream, batched as rnnlm validates (src/core/train.c)."""
    if len(ids) < 2:
        return float("nan"), 0
    B = min(B, len(ids) - 1)
    inp, tgt, per_stream = stream_batches(ids, B)
    model.eval()
    total, state = 0.0, None
    with torch.no_grad():
        for pos in range(0, per_stream, S):
            logits, state = model(inp[pos:pos + S], state)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                     tgt[pos:pos + S].reshape(-1), reduction="sum").item()
    return total / (per_stream * B), per_stream * B


def precision_context(a):
    """bf16 autocast for --bf16, else nothing."""
    if a.bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cmd_train(a):
    torch.set_num_threads(a.torch_threads)
    rss_start = proc_status_kb("VmRSS")
    docs = read_docs(a.docs)
    nval = validation_docs(a.val_fraction, len(docs))
    train_docs, val_docs = docs[:len(docs) - nval], docs[len(docs) - nval:]
    itos = build_vocab(a.tokenizer, train_docs, a.max_vocab)
    stoi = {t: i for i, t in enumerate(itos)}
    train_ids = to_stream(a.tokenizer, train_docs, stoi)
    val_ids = to_stream(a.tokenizer, val_docs, stoi)
    V = len(itos)
    torch.manual_seed(a.seed)
    model = LM(a.cell, V, a.emb, a.hidden, a.layers)
    model.init_like_rnnlm(a.seed)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    B = min(a.batch, len(train_ids) - 1)
    inp, tgt, per_stream = stream_batches(train_ids, B)
    train_tokens = per_stream * B
    log("%s: vocabulary %d, %d training tokens, %d validation documents"
        % (a.config, V, train_tokens, nval))

    model.train()
    state, total = None, 0.0
    t0 = time.perf_counter()
    for pos in range(0, per_stream, a.seq):
        x, y = inp[pos:pos + a.seq], tgt[pos:pos + a.seq]
        with precision_context(a):
            logits, state = model(x, detach(state))
            loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        total += loss.item() * x.numel()
    t1 = time.perf_counter()
    with precision_context(a):
        val_loss, val_tokens = evaluate_stream(model, val_ids, a.batch, a.seq)
    t2 = time.perf_counter()

    torch.save({"cell": a.cell, "tokenizer": a.tokenizer, "itos": itos,
                "dims": (V, a.emb, a.hidden, a.layers), "state": model.state_dict()},
               a.save)
    emit(a.config + ".torch.train" + a.tag, {
        "torch_threads": a.torch_threads, "bf16": a.bf16,
        "vocab_size": V,
        "parameters": sum(p.numel() for p in model.parameters()),
        "documents": len(docs), "validation_documents": nval,
        "train_tokens": train_tokens, "val_tokens": val_tokens,
        "train_loss": total / train_tokens, "val_loss": val_loss,
        "train_seconds": t1 - t0, "val_seconds": t2 - t1,
        # as rnnlm_train reports it: training tokens over training plus validation time
        "seconds": t2 - t0, "tokens_per_second": train_tokens / (t2 - t0),
        "train_only_tokens_per_second": train_tokens / (t1 - t0),
        "rss_start_kb": rss_start, "vmhwm_kb": proc_status_kb("VmHWM"),
    })


def load_model(path):
    ck = torch.load(path)
    V, E, H, L = ck["dims"]
    model = LM(ck["cell"], V, E, H, L)
    model.load_state_dict(ck["state"])
    model.eval()
    return model, ck["tokenizer"], {t: i for i, t in enumerate(ck["itos"])}


def cmd_score_batch(a):
    """Loss over the validation documents, in padded batches of documents."""
    torch.set_num_threads(a.torch_threads)
    model, tokenizer, stoi = load_model(a.model)
    docs = read_docs(a.docs)
    docs = docs[len(docs) - a.val_docs:]
    t0 = time.perf_counter()
    seqs = [[stoi.get(t, UNK) for t in split_tokens(tokenizer, d)] for d in docs]
    seqs.sort(key=len)
    total, tokens, correct = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(seqs), a.batch):
            group = seqs[i:i + a.batch]
            T = max(len(s) for s in group) + 1
            inp = torch.zeros(T, len(group), dtype=torch.long)
            tgt = torch.full((T, len(group)), -100, dtype=torch.long)
            for b, s in enumerate(group):
                inp[1:len(s) + 1, b] = torch.tensor(s, dtype=torch.long)
                tgt[:len(s), b] = torch.tensor(s, dtype=torch.long)
                tgt[len(s), b] = EOD
            with precision_context(a):
                logits, _ = model(inp)
            logits = logits.float()
            flat, flat_tgt = logits.reshape(-1, logits.size(-1)), tgt.reshape(-1)
            total += F.cross_entropy(flat, flat_tgt, ignore_index=-100, reduction="sum").item()
            correct += (flat.argmax(dim=1) == flat_tgt).sum().item()
            tokens += sum(len(s) + 1 for s in group)
    secs = time.perf_counter() - t0
    emit(a.config + ".torch.score_batch" + a.tag, {
        "torch_threads": a.torch_threads, "bf16": a.bf16,
        "documents": len(docs), "tokens": tokens, "loss": total / tokens, "accuracy": correct / tokens,
        "seconds": secs, "tokens_per_second": tokens / secs, "batch": a.batch})


def score_one(model, tokenizer, stoi, text):
    """Perplexity of one text: <eod> first, its tokens, <eod> last; batch 1."""
    ids = [stoi.get(t, UNK) for t in split_tokens(tokenizer, text)]
    inp = torch.tensor([EOD] + ids, dtype=torch.long).unsqueeze(1)
    tgt = torch.tensor(ids + [EOD], dtype=torch.long).unsqueeze(1)
    logits, _ = model(inp)
    lp = F.log_softmax(logits.squeeze(1), dim=-1).gather(1, tgt)
    return math.exp(-lp.mean().item())


def cmd_score_rows(a):
    torch.set_num_threads(1)
    model, tokenizer, stoi = load_model(a.model)
    rows = read_docs(a.rows)
    if a.max_rows:
        rows = rows[:a.max_rows]
    with torch.no_grad():
        score_one(model, tokenizer, stoi, rows[0])  # warm-up
        t0 = time.perf_counter()
        total = sum(score_one(model, tokenizer, stoi, r) for r in rows)
        t1 = time.perf_counter()
        for _ in range(a.repeat_a):
            score_one(model, tokenizer, stoi, "a")
        t2 = time.perf_counter()
    emit(a.config + ".torch.score_rows", {
        "rows": len(rows), "seconds": t1 - t0, "rows_per_second": len(rows) / (t1 - t0),
        "mean_perplexity": total / len(rows),
        "a_rows": a.repeat_a, "a_seconds": t2 - t1, "a_rows_per_second": a.repeat_a / (t2 - t1),
        "vmhwm_kb": proc_status_kb("VmHWM")})


def cmd_env(a):
    """What PyTorch computes with: its BLAS, oneDNN, the CPU capability it uses."""
    cfg = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=([^,]*)", cfg)
    emit("torch.config", {
        "blas": blas.group(1) if blas else "unknown",
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability()
        if hasattr(torch.backends, "cpu") and hasattr(torch.backends.cpu, "get_cpu_capability") else "unknown",
        "parallel": [l.strip() for l in torch.__config__.parallel_info().splitlines()[:6]],
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("prepare")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--w-lines", type=int, required=True)
    p.add_argument("--c-lines", type=int, required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--row-chars", type=int, default=100)
    p.add_argument("--par-rows", type=int, required=True)
    p.add_argument("--val-fraction", type=float, default=0.1)

    p = sub.add_parser("train")
    p.add_argument("--config", required=True)
    p.add_argument("--docs", required=True)
    p.add_argument("--save", required=True)
    p.add_argument("--cell", choices=("lstm", "gru"), required=True)
    p.add_argument("--tokenizer", choices=("word", "char"), required=True)
    p.add_argument("--max-vocab", type=int, default=0)
    p.add_argument("--emb", type=int, required=True)
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--tag", default="")

    p = sub.add_parser("score-batch")
    p.add_argument("--config", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--docs", required=True)
    p.add_argument("--val-docs", type=int, required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--tag", default="")

    p = sub.add_parser("env")

    p = sub.add_parser("score-rows")
    p.add_argument("--config", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--rows", required=True)
    p.add_argument("--max-rows", type=int, default=0, help="score only the first rows (0: all)")
    p.add_argument("--repeat-a", type=int, default=20000)

    a = ap.parse_args()
    {"prepare": cmd_prepare, "train": cmd_train, "score-batch": cmd_score_batch,
     "score-rows": cmd_score_rows, "env": cmd_env}[a.cmd](a)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Turns the raw results of bench/run.sh into a Markdown report.

Usage: report.py RAW.tsv > report.md

RAW.tsv has one "key<TAB>value" line per measurement; a value may be JSON.
The report has the machine and settings, the tables (ratios are rnnlm
divided by PyTorch: above 1 means rnnlm is faster, or for memory, larger),
notes on what is measured, and every raw value.
"""

import json
import sys

CONFIGS = [("w_lstm", "W-LSTM"), ("w_gru", "W-GRU"), ("c_lstm", "C-LSTM"), ("c_gru", "C-GRU")]
ROW_CONFIGS = [("c_lstm", "C-LSTM"), ("c_gru", "C-GRU"), ("tiny", "tiny (char LSTM, E 16, H 64, 1 layer)")]
GATES = {"lstm": 4, "gru": 3}
DIMS = {"w": (256, 512, 2), "c": (64, 512, 2)}   # embedding, hidden, layers


def load(path):
    raw = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            try:
                value = json.loads(value)
            except ValueError:
                pass
            # the "result" of a timed query is itself often JSON
            if isinstance(value, dict) and isinstance(value.get("result"), str):
                try:
                    value["result"] = json.loads(value["result"])
                except ValueError:
                    pass
            raw[key] = value
    return raw


def num(x, digits=0):
    """A number with thousands separators, or n/a."""
    if x is None:
        return "n/a"
    return "{:,.{}f}".format(x, digits)


def auto(x):
    """A number with about three significant digits."""
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        return num(x, 0)
    if abs(x) >= 10:
        return num(x, 1)
    if abs(x) >= 1:
        return num(x, 2)
    return "%.3g" % x


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    r = a / b
    return "%.2f" % r if r >= 0.1 else "%.3f" % r


def mb(kb):
    return None if kb is None else kb / 1024.0


def fwd_flops(cfg, V):
    """Forward FLOPs per token: 2*sum_l G*H*(I_l + H) + 2*V*H."""
    E, H, L = DIMS[cfg[0]]
    G = GATES[cfg.split("_")[1]]
    return 2 * sum(G * H * ((E if l == 0 else H) + H) for l in range(L)) + 2 * V * H


def get(raw, key, field=None):
    v = raw.get(key)
    if field is None:
        return v
    if isinstance(v, dict):
        for part in field.split("."):
            if not isinstance(v, dict):
                return None
            v = v.get(part)
        return v
    return None


def fnum(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def best_of(raw, prefix):
    """The largest of the values whose keys start with prefix."""
    vals = [fnum(v) for k, v in raw.items() if k.startswith(prefix)]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def best_torch(raw, key):
    """PyTorch's best run of key: the plain key, or key.tN for each thread count."""
    runs = [v for k, v in raw.items()
            if (k == key or (k.startswith(key + ".t") and k[len(key) + 2:].isdigit()))
            and isinstance(v, dict) and v.get("tokens_per_second")]
    return max(runs, key=lambda v: v["tokens_per_second"]) if runs else None


def threads_note(t):
    return " (set_num_threads %s)" % t["torch_threads"] if isinstance(t, dict) and "torch_threads" in t else ""


def target_line(w, name, value, goal, fmt="%.2f", unit="x"):
    """One row of the targets table: met, or the gap."""
    if value is None:
        w("| %s | %s%s | not measured | |" % (name, fmt % goal, unit))
        return
    w("| %s | %s%s | %s%s | %s |" % (name, fmt % goal, unit, fmt % value, unit,
                                   "met" if value >= goal else "**not met** (gap %s%s)" % (fmt % (goal - value), unit)))


def main():
    raw = load(sys.argv[1])
    T = int(raw.get("env.threads", 2))
    peak = best_of(raw, "sgemm.gflops.%d." % T)
    peak1 = best_of(raw, "sgemm.gflops.1.")
    out = []
    w = out.append

    w("# rnnlm vs PyTorch: training and scoring on the same machine and data")
    w("")
    if raw.get("env.quick") in (1, "1"):
        w("**Quick mode: tiny subsets, a smoke run; these numbers are not representative.**")
        w("")
    w("- Date: %s; rnnlm commit %s" % (raw.get("env.date"), raw.get("env.commit") or "unknown"))
    w("- Machine: %s, %s vCPUs (%s; threads per core: %s as reported%s), %s GB RAM, Linux %s"
      % (raw.get("env.cpu"), raw.get("env.cpus"), (raw.get("env.flags") or "").strip() or "?",
         raw.get("env.threads_per_core") or "?",
         (", %s guest: the vCPUs may be SMT siblings of one core" % raw["env.hypervisor"])
         if raw.get("env.hypervisor") else "",
         raw.get("env.mem_gb"), raw.get("env.kernel")))
    w("- OpenBLAS: %s; kernel %s; OPENBLAS_CORETYPE %s"
      % (raw.get("openblas.config"), raw.get("openblas.corename"),
         raw.get("env.openblas_coretype") or "unset"))
    w("- sgemm peak (OpenBLAS cblas_sgemm, %s x %s float32, best of several runs at the start and at the end): **%s GFLOP/s at %d threads**, %s GFLOP/s at 1 thread (%s x)"
      % (raw.get("sgemm.N"), raw.get("sgemm.N"), auto(peak), T, auto(peak1),
         ratio(peak, peak1)))
    rt = raw.get("env.runtime") if isinstance(raw.get("env.runtime"), dict) else {}
    prod = rt.get("products") or {}
    blas = rt.get("blas") or {}
    bf16p = prod.get("bf16")
    w("- rnnlm computes with: fp32 products on %s (%s; core chosen by %s%s); vector kernels %s; bf16 products: %s; CPU features seen: %s"
      % ((prod.get("fp32") or {}).get("backend"), (prod.get("fp32") or {}).get("kernel"),
         blas.get("chosen_by"), ", instead of %s" % blas["instead_of"] if blas.get("instead_of") else "",
         (rt.get("kernels") or {}).get("vector"),
         "%s (%s)" % (bf16p.get("backend"), bf16p.get("kernel")) if isinstance(bf16p, dict) else "none",
         " ".join((rt.get("cpu") or {}).get("features") or [])))
    tc = raw.get("torch.config") if isinstance(raw.get("torch.config"), dict) else {}
    w("- PyTorch computes with: BLAS %s, oneDNN (mkldnn) %s; it is run with torch.set_num_threads 1 and %d, the better kept"
      % (tc.get("blas"), "available" if tc.get("mkldnn") else "absent", T))
    w("- PostgreSQL: %s" % raw.get("env.postgres"))
    w("- PyTorch %s (NumPy %s, Python %s): OPENBLAS_NUM_THREADS=%d for training and batched scoring, 1 for per-row scoring"
      % (raw.get("env.torch"), raw.get("env.numpy"), raw.get("env.python"), T))
    w("- rnnlm: rnnlm.threads = %d for training and batched scoring, 1 for per-row scoring and the parallel query" % T)
    idle = [fnum(raw.get("env.cpu_idle_pct_at_" + k)) for k in ("start", "end")]
    busy = any(i is not None and i < 90 for i in idle)
    w("- CPU idle in the 3 s before / after the run: %s%% / %s%%%s" % (auto(idle[0]), auto(idle[1]),
      " -- **other work was running; the numbers are skewed**" if busy else ""))
    samples = raw.get("env.load_samples")
    if isinstance(samples, list) and samples:
        heavy = max(samples) > T + 1
        w("- 1-minute load average during the run (every 5 s): mean %.2f, max %.2f (the benchmark itself accounts for up to about %d)%s"
          % (sum(samples) / len(samples), max(samples), T,
             " -- **other work competed for the CPUs**" if heavy else ""))
    w("- Data: tinyshakespeare.txt, one document per non-empty line; W: the first %s lines (%s characters), C: the first %s lines (%s characters); the last 10%% of the documents are the validation set"
      % (num(fnum(raw.get("data.w.lines"))), num(fnum(raw.get("data.w.chars"))),
         num(fnum(raw.get("data.c.lines"))), num(fnum(raw.get("data.c.chars")))))
    w("- Command: `%s`" % raw.get("env.command"))
    w("")

    # ---- training
    w("### Training, one epoch, %d threads" % T)
    w("")
    w("| model | vocab | train tokens | rnnlm tokens/s | PyTorch tokens/s | rnnlm / PyTorch | rnnlm GFLOP/s (% of peak) | PyTorch GFLOP/s (% of peak) | val loss rnnlm | val loss PyTorch |")
    w("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |")
    checks = []
    for cfg, label in CONFIGS:
        r, t = raw.get(cfg + ".rnnlm.train"), best_torch(raw, cfg + ".torch.train")
        if not isinstance(r, dict) or not isinstance(t, dict):
            w("| %s | missing | | | | | | | | |" % label)
            continue
        V = r["vocab_size"]
        flops = 3 * fwd_flops(cfg, V)
        rg = r["tokens_per_second"] * flops / 1e9
        tg = t["tokens_per_second"] * flops / 1e9
        pct = lambda g: "%s (%s%%)" % (auto(g), auto(100 * g / peak)) if peak else auto(g)
        w("| %s | %s | %s | %s | %s%s | **%s** | %s | %s | %.3f | %.3f |"
          % (label, num(V), num(r["train_tokens"]), num(r["tokens_per_second"]),
             num(t["tokens_per_second"]), threads_note(t), ratio(r["tokens_per_second"], t["tokens_per_second"]),
             pct(rg), pct(tg), r["val_loss"] if r["val_loss"] is not None else float("nan"),
             t["val_loss"]))
        for k in ("vocab_size", "train_tokens", "val_tokens", "validation_documents"):
            if r.get(k) != t.get(k):
                checks.append("%s: %s differs: rnnlm %s, PyTorch %s" % (label, k, r.get(k), t.get(k)))
    w("")

    # ---- scoring
    w("### Scoring")
    w("")
    w("| workload | rnnlm | PyTorch | rnnlm / PyTorch |")
    w("| --- | --: | --: | --: |")
    has_array = raw.get("env.has_batch_perplexity") in ("t", True, "true")
    for cfg, label in CONFIGS:
        ev, tb = raw.get(cfg + ".rnnlm.evaluate"), best_torch(raw, cfg + ".torch.score_batch")
        if not isinstance(ev, dict) or not isinstance(tb, dict):
            continue
        tokens = get(raw, cfg + ".rnnlm.evaluate", "result.tokens")
        r_tps = tokens / ev["seconds"] if tokens else None
        w("| %s validation documents (%s tokens), tokens/s: `rnnlm_evaluate` (%d threads) vs batched forward (batch %s) | %s | %s | %s |"
          % (label, num(tokens), T, tb.get("batch"), num(r_tps), num(tb["tokens_per_second"]),
             ratio(r_tps, tb["tokens_per_second"])))
        pa = raw.get(cfg + ".rnnlm.perplexity_array")
        if isinstance(pa, dict) and tokens:
            p_tps = tokens / pa["seconds"]
            w("| %s same, `rnnlm_perplexity(model, text[])` | %s | %s | %s |"
              % (label, num(p_tps), num(tb["tokens_per_second"]), ratio(p_tps, tb["tokens_per_second"])))
        elif not has_array:
            w("| %s same, `rnnlm_perplexity(model, text[])` | skipped: the function does not exist yet | %s | |"
              % (label, num(tb["tokens_per_second"])))
        if tokens and tb.get("tokens") != tokens:
            checks.append("%s: scored tokens differ: rnnlm %s, PyTorch %s" % (label, tokens, tb.get("tokens")))
    for cfg, label in ROW_CONFIGS:
        sr, tr = raw.get(cfg + ".rnnlm.score_rows"), raw.get(cfg + ".torch.score_rows")
        if not isinstance(sr, dict) or not isinstance(tr, dict):
            continue
        r_rps = sr["rows"] / sr["seconds"]
        w("| %s per-row scoring, %s rows of %s characters%s, rows/s (1 thread; PyTorch batch 1) | %s | %s | %s |"
          % (label, num(sr["rows"]), raw.get("data.row_chars"),
             " (PyTorch: the first %s)" % num(tr["rows"]) if tr["rows"] != sr["rows"] else "",
             auto(r_rps), auto(tr["rows_per_second"]), ratio(r_rps, tr["rows_per_second"])))
    for cfg, label in ROW_CONFIGS:
        sa, tr = raw.get(cfg + ".rnnlm.score_a"), raw.get(cfg + ".torch.score_rows")
        if not isinstance(sa, dict) or not isinstance(tr, dict):
            continue
        r_rps = sa["rows"] / sa["seconds"]
        w("| %s per-call cost: one-character row `'a'` x %s%s, rows/s (1 thread) | %s | %s | %s |"
          % (label, num(sa["rows"]),
             " (PyTorch: x %s)" % num(tr["a_rows"]) if tr["a_rows"] != sa["rows"] else "",
             num(r_rps), num(tr["a_rows_per_second"]), ratio(r_rps, tr["a_rows_per_second"])))
    w("")

    # ---- bf16
    w("### bf16 (bf16 inputs, fp32 sums, fp32 master weights)")
    w("")
    bf16_train = {}
    if raw.get("bf16.skipped"):
        w("Skipped: %s. The bf16 paths are tested on every machine on the reference backend (`rnnlm.backend = 'reference'`), which is not measured." % raw["bf16.skipped"])
    else:
        w("| model | rnnlm bf16 tokens/s | rnnlm fp32 tokens/s | bf16 / fp32 | PyTorch bf16 tokens/s | rnnlm bf16 / PyTorch bf16 | val loss bf16 - fp32 | batched scoring bf16 tokens/s (rnnlm / PyTorch bf16) | agreement with fp32: mean abs diff of token log-probs |")
        w("| --- | --: | --: | --: | --: | --: | --: | --: | --: |")
        for cfg, label in CONFIGS:
            r16, r32 = raw.get(cfg + "_bf16.rnnlm.train"), raw.get(cfg + ".rnnlm.train")
            t16 = best_torch(raw, cfg + "_bf16.torch.train")
            ev = raw.get(cfg + "_bf16.rnnlm.evaluate")
            tb = best_torch(raw, cfg + "_bf16.torch.score_batch")
            ag = raw.get(cfg + ".agreement.bf16")
            if not isinstance(r16, dict) or not isinstance(r32, dict):
                w("| %s | missing | | | | | | | |" % label)
                continue
            bf16_train[cfg] = (r16, r32, t16)
            tokens = get(raw, cfg + "_bf16.rnnlm.evaluate", "result.tokens")
            e_tps = tokens / ev["seconds"] if isinstance(ev, dict) and tokens else None
            w("| %s | %s | %s | **%s** | %s%s | **%s** | %+.4f | %s (%s) | %s |"
              % (label, num(r16["tokens_per_second"]), num(r32["tokens_per_second"]),
                 ratio(r16["tokens_per_second"], r32["tokens_per_second"]),
                 num(t16["tokens_per_second"]) if t16 else "n/a", threads_note(t16),
                 ratio(r16["tokens_per_second"], t16["tokens_per_second"]) if t16 else "n/a",
                 (r16["val_loss"] or 0) - (r32["val_loss"] or 0),
                 num(e_tps), ratio(e_tps, tb["tokens_per_second"]) if tb and e_tps else "n/a",
                 "%.2e (%s tokens)" % (ag["mean_abs_diff"], num(ag["tokens"])) if isinstance(ag, dict) else "n/a"))
        for cfg, label in ROW_CONFIGS[:2]:
            s16, s32 = raw.get(cfg + "_bf16.rnnlm.score_rows"), raw.get(cfg + ".rnnlm.score_rows")
            tr = raw.get(cfg + ".torch.score_rows")
            if isinstance(s16, dict) and isinstance(s32, dict):
                r16 = s16["rows"] / s16["seconds"]
                w("")
                w("- %s per-row scoring in bf16: %s rows/s (fp32 %s; bf16 / fp32 %s; / PyTorch batch 1 fp32 %s)"
                  % (label, auto(r16), auto(s32["rows"] / s32["seconds"]), ratio(r16, s32["rows"] / s32["seconds"]),
                     ratio(r16, tr["rows_per_second"]) if isinstance(tr, dict) else "n/a"))
    w("")

    # ---- int8
    rows8 = []
    for cfg, label in ROW_CONFIGS[:2]:
        s8, s32 = raw.get(cfg + "_int8.rnnlm.score_rows"), raw.get(cfg + ".rnnlm.score_rows")
        tr = raw.get(cfg + ".torch.score_rows")
        ag = raw.get(cfg + ".agreement.int8")
        if isinstance(s8, dict) and isinstance(s32, dict):
            r8, r32 = s8["rows"] / s8["seconds"], s32["rows"] / s32["seconds"]
            rows8.append("| %s | %s | %s | **%s** | %s | %s |"
                         % (label, auto(r8), auto(r32), ratio(r8, r32),
                            ratio(r8, tr["rows_per_second"]) if isinstance(tr, dict) else "n/a",
                            "%.2e (%s tokens)" % (ag["mean_abs_diff"], num(ag["tokens"])) if isinstance(ag, dict) else "n/a"))
    if rows8:
        w("### int8 per-row scoring (`rnnlm.precision = int8`: one-row products from int8 weights, one scale per row; 1 thread)")
        w("")
        w("| model | int8 rows/s | fp32 rows/s | int8 / fp32 | int8 / PyTorch batch 1 (fp32) | agreement with fp32: mean abs diff of token log-probs |")
        w("| --- | --: | --: | --: | --: | --: |")
        for line in rows8:
            w(line)
        w("")

    # ---- targets
    w("### Targets")
    w("")
    w("| target | goal | measured (worst of the models) | |")
    w("| --- | --: | --: | --- |")
    tr_ratios, pk = [], []
    for cfg, _ in CONFIGS:
        r, t = raw.get(cfg + ".rnnlm.train"), best_torch(raw, cfg + ".torch.train")
        if isinstance(r, dict) and t:
            tr_ratios.append(r["tokens_per_second"] / t["tokens_per_second"])
            if peak:
                pk.append(100 * r["tokens_per_second"] * 3 * fwd_flops(cfg, r["vocab_size"]) / 1e9 / peak)
    target_line(w, "fp32 training, rnnlm / PyTorch (W and C)", min(tr_ratios) if tr_ratios else None, 1.7)
    target_line(w, "fp32 training, % of the sgemm peak", min(pk) if pk else None, 70, "%.0f", "%")
    bs = []
    for cfg, _ in CONFIGS:
        ev, tb = raw.get(cfg + ".rnnlm.evaluate"), best_torch(raw, cfg + ".torch.score_batch")
        tokens = get(raw, cfg + ".rnnlm.evaluate", "result.tokens")
        if isinstance(ev, dict) and tb and tokens:
            bs.append(tokens / ev["seconds"] / tb["tokens_per_second"])
    target_line(w, "batched scoring (fp32), rnnlm_evaluate / PyTorch", min(bs) if bs else None, 2.0)
    pr = []
    for cfg, _ in ROW_CONFIGS[:2]:
        sr, trr = raw.get(cfg + ".rnnlm.score_rows"), raw.get(cfg + ".torch.score_rows")
        if isinstance(sr, dict) and isinstance(trr, dict):
            pr.append(sr["rows"] / sr["seconds"] / trr["rows_per_second"])
    target_line(w, "per-row scoring (model C, fp32, 1 thread), rnnlm / PyTorch batch 1", min(pr) if pr else None, 5.0)
    if bf16_train:
        target_line(w, "bf16 training, rnnlm bf16 / rnnlm fp32",
                    min(a["tokens_per_second"] / b["tokens_per_second"] for a, b, _ in bf16_train.values()), 2.5)
        target_line(w, "bf16 training, rnnlm bf16 / PyTorch bf16",
                    min(a["tokens_per_second"] / t["tokens_per_second"] for a, _, t in bf16_train.values() if t) if any(t for _, _, t in bf16_train.values()) else None, 1.7)
        worst = max(abs((a["val_loss"] or 0) - (b["val_loss"] or 0)) for a, b, _ in bf16_train.values())
        w("| bf16 training, validation loss within 0.02 nats of fp32 | 0.02 | %.4f | %s |" % (worst, "met" if worst <= 0.02 else "**not met**"))
    else:
        w("| bf16 targets | | not measured: %s | |" % (raw.get("bf16.skipped") or "no bf16 results"))
    if blas.get("chosen_by") == "rnnlm":
        w("| nothing set by hand: OpenBLAS would have picked %s; rnnlm set the core from the flags (%s) | | | |" % (blas.get("instead_of"), blas.get("core")))
    else:
        w("| nothing set by hand: OpenBLAS picked its own core (%s), not older than the processor (legacy_core %s); no OPENBLAS_CORETYPE comparison is needed on this machine | | | |"
          % (blas.get("core"), str(blas.get("legacy_core")).lower()))
    w("")

    # ---- memory
    w("### Peak resident memory (VmHWM, MB)")
    w("")
    w("| work | rnnlm backend | PyTorch process | rnnlm / PyTorch |")
    w("| --- | --: | --: | --: |")
    fresh = get(raw, "mem.fresh_backend", "vmhwm_kb")
    for cfg, label in CONFIGS:
        bt = best_torch(raw, cfg + ".torch.train")
        rm, t = get(raw, cfg + ".rnnlm.train_mem", "vmhwm_kb"), bt.get("vmhwm_kb") if bt else None
        if rm is None:
            continue
        w("| training %s | %s | %s | %s |" % (label, num(mb(rm)), num(mb(t)), ratio(rm, t)))
    for cfg, label in ROW_CONFIGS:
        rm, t = get(raw, cfg + ".rnnlm.score_rows_mem", "vmhwm_kb"), get(raw, cfg + ".torch.score_rows", "vmhwm_kb")
        if rm is None:
            continue
        w("| per-row scoring %s | %s | %s | %s |" % (label, num(mb(rm)), num(mb(t)), ratio(rm, t)))
    t0 = [(best_torch(raw, c + ".torch.train") or {}).get("rss_start_kb") for c, _ in CONFIGS]
    t0 = [x for x in t0 if x]
    w("| baseline: a fresh backend / the Python process after importing torch | %s | %s | |"
      % (num(mb(fresh)), num(mb(min(t0))) if t0 else "n/a"))
    w("")

    m1, m2 = raw.get("flat.mem1"), raw.get("flat.mem2")
    r1, r2 = raw.get("flat.run1"), raw.get("flat.run2")
    if isinstance(m1, dict) and isinstance(m2, dict):
        w("**Memory flatness** (one backend, a tiny model, `rnnlm_perplexity(m, 'row ' || i)` over generate_series): "
          "after %s rows VmRSS %s MB / VmHWM %s MB; after %s rows VmRSS %s MB / VmHWM %s MB (growth %s MB); %s rows/s."
          % (num(m1["rows_scored"]), auto(mb(m1["vmrss_kb"])), auto(mb(m1["vmhwm_kb"])),
             num(m2["rows_scored"]), auto(mb(m2["vmrss_kb"])), auto(mb(m2["vmhwm_kb"])),
             auto(mb(m2["vmhwm_kb"] - m1["vmhwm_kb"])),
             num((r1["rows"] + r2["rows"]) / (r1["seconds"] + r2["seconds"])) if isinstance(r1, dict) and isinstance(r2, dict) else "n/a"))
        w("")

    # ---- parallel query
    best = {}
    for wk in (0, 2):
        runs = []
        r = 1
        while ("parallel.%d.%d.ms" % (wk, r)) in raw:
            ms = fnum(raw["parallel.%d.%d.ms" % (wk, r)])
            launched = raw.get("parallel.%d.%d.launched" % (wk, r))
            if ms is not None:
                runs.append((ms, launched))
            r += 1
        if runs:
            best[wk] = min(runs, key=lambda x: x[0])
    if best:
        w("### Parallel query: `EXPLAIN (ANALYZE) SELECT sum(rnnlm_perplexity(m, line)) FROM t`, %s rows (%s characters), tiny model, rnnlm.threads = 1"
          % (num(fnum(raw.get("data.par_rows"))), num(fnum(raw.get("data.par_chars")))))
        w("")
        w("| max_parallel_workers_per_gather | Workers Launched | Execution Time (ms, best) | speed-up |")
        w("| --: | --: | --: | --: |")
        for wk in sorted(best):
            ms, launched = best[wk]
            w("| %d | %s | %s | %s |" % (wk, launched if launched not in (None, "") else "(no Gather)",
                                          num(ms, 1), "%.2f x" % (best[0][0] / ms) if 0 in best else ""))
        w("")

    # ---- notes
    w("Notes")
    w("")
    w("- Ratios are rnnlm / PyTorch: above 1, rnnlm is faster (for memory: uses more).")
    w("- Training tokens/s is rnnlm_train's `tokens_per_second`: training tokens over the time of the epoch including its validation pass; PyTorch's is computed the same way (training-only rates are in the raw numbers).")
    w("- Model GFLOP/s = tokens/s x training FLOPs per token, with training = 3 x forward and forward = 2 * sum_l G*H*(I_l + H) + 2*V*H "
      "(G = 4 for LSTM, 3 for GRU; I_0 = E, I_l = H above; the embedding lookup counted as free); %% of the %d-thread sgemm peak." % T)
    w("- PyTorch trains nn.LSTM / nn.GRU with rnnlm's initialisation, batching (batch_size contiguous streams, chunks of seq_len, state carried), Adam lr 0.001 and clip_norm 5, on the same token ids. "
      "nn.GRU applies the reset gate after the recurrent product, r*(W h + b); rnnlm's GRU applies it before, W (r*h): the same cost, a slightly different function. "
      "Validation losses come from each side's own weights after one epoch, so they agree only approximately.")
    w("- Batched scoring: both sides score each validation document from the zero state (<eod> in, then its tokens; <eod> last predicted) and sum the cross-entropy; PyTorch runs the documents sorted by length in padded batches of 32 without gradients. Times include tokenization; for rnnlm, also reading the rows (`rnnlm_evaluate`) or building the array (`ARRAY(SELECT ...)`).")
    w("- Per-row scoring times `SELECT avg(rnnlm_perplexity(m, line)) FROM rows` inside the backend (clock_timestamp around the query, the model already loaded); PyTorch scores each row with its own forward call (batch 1, no_grad, log_softmax + gather), tokenization included on both sides. "
      "At batch 1 every recurrent step is a one-row matrix product: rnnlm computes it as a matrix-vector product, PyTorch's nn.LSTM / nn.GRU with sgemm, which OpenBLAS %s does far more slowly for a single row. "
      "The one-character rows (two predictions each) measure the cost of a call: with model C it includes work that grows with the size of the weights; the tiny model shows the fixed overhead of a call." % (
          (raw.get("openblas.config") or "").split(" ")[1] if raw.get("openblas.config") else ""))
    w("- The cluster runs with jit = off: rnnlm_perplexity's COST makes queries over a few thousand rows JIT-compiled, and loading LLVM adds about 50 MB to the backend, which would hide rnnlm's own memory use.")
    w("- Memory: VmHWM of the backend that did the work (a fresh connection each) and of the PyTorch process (which includes the Python interpreter and the torch library).")
    if checks:
        w("")
        w("**Check failures** (the two sides did not see the same data):")
        w("")
        for c in checks:
            w("- " + c)
    else:
        w("- Checked: both sides built the same vocabulary size and the same training and validation token counts, and scored the same number of tokens.")
    w("")

    # ---- raw numbers
    w("### Raw numbers")
    w("")
    w("```")
    for k in raw:
        v = raw[k]
        if k.endswith(".plan"):
            continue
        w("%s\t%s" % (k, json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v))
    w("```")
    for k in raw:
        if k.endswith(".plan"):
            w("")
            w("`%s`:" % k)
            w("```")
            w(str(raw[k]).rstrip("\n"))
            w("```")
    print("\n".join(out))


if __name__ == "__main__":
    main()

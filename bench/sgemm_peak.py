#!/usr/bin/python3
"""The machine's single-precision matrix-multiply peak through OpenBLAS.

Calls cblas_sgemm of libopenblas.so.0 (the library rnnlm loads) through
ctypes on large square float32 matrices and keeps the best of several runs,
at each thread count given (set with openblas_set_num_threads).

Usage:
    sgemm_peak.py [--size N] [--runs R] THREADS...

Output (stdout), one "key<TAB>value" line each:
    openblas.corename   the kernel OpenBLAS picked (e.g. Zen, Haswell)
    openblas.config     its build configuration string
    sgemm.N             the matrix size
    sgemm.gflops.T      best GFLOP/s at T threads (2*N^3 / seconds)
"""

import argparse
import ctypes
import time

import numpy as np

CBLAS_ROW_MAJOR = 101
CBLAS_NO_TRANS = 111


def load_openblas():
    """The OpenBLAS library, with the prototypes this script uses."""
    lib = ctypes.CDLL("libopenblas.so.0")
    fptr = ctypes.POINTER(ctypes.c_float)
    lib.cblas_sgemm.restype = None
    lib.cblas_sgemm.argtypes = [
        ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_float, fptr, ctypes.c_int, fptr, ctypes.c_int,
        ctypes.c_float, fptr, ctypes.c_int]
    lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
    lib.openblas_set_num_threads.restype = None
    lib.openblas_get_corename.restype = ctypes.c_char_p
    lib.openblas_get_config.restype = ctypes.c_char_p
    return lib


def best_gflops(lib, threads, n, runs):
    """Best GFLOP/s of C = A B for n x n float32 matrices at the thread count."""
    lib.openblas_set_num_threads(threads)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.zeros((n, n), dtype=np.float32)
    fptr = ctypes.POINTER(ctypes.c_float)
    pa, pb, pc = (x.ctypes.data_as(fptr) for x in (a, b, c))

    def once():
        lib.cblas_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS,
                        n, n, n, 1.0, pa, n, pb, n, 0.0, pc, n)

    once()  # warm-up: thread start-up, page faults
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - t0)
    # a sanity check on one element, so a broken call cannot report a speed
    if abs(float(c[0, 0]) - float(np.dot(a[0, :].astype(np.float64), b[:, 0].astype(np.float64)))) > 1e-2 * n:
        raise SystemExit("cblas_sgemm returned a wrong result")
    return 2.0 * n ** 3 / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("threads", type=int, nargs="+")
    args = ap.parse_args()
    lib = load_openblas()
    print("openblas.corename\t%s" % lib.openblas_get_corename().decode())
    print("openblas.config\t%s" % lib.openblas_get_config().decode().strip())
    print("sgemm.N\t%d" % args.size)
    for t in args.threads:
        print("sgemm.gflops.%d\t%.2f" % (t, best_gflops(lib, t, args.size, args.runs)), flush=True)


if __name__ == "__main__":
    main()

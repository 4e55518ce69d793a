#!/usr/bin/python3
"""PyTorch's matmul throughput, the peer of the engine's GEMMs in `npm run bench:engine`.

    torch_matmul.py N REPS DTYPE THREADS  ->  {"n": N, "dtype": DTYPE, "threads": THREADS, "gflops": best}

An N x N x N product of uniform random matrices in DTYPE (bfloat16 or float32), best of REPS timed calls
after one warm-up call, on THREADS intra-op threads (oneDNN runs bf16 matmuls on AMX or AVX512-BF16
where the CPU has them).
"""
import json
import sys
import time

import torch

n, reps, dtype, threads = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
torch.set_num_threads(threads)
a = (torch.rand(n, n) - 0.5).to(getattr(torch, dtype))
b = (torch.rand(n, n) - 0.5).to(getattr(torch, dtype))
torch.matmul(a, b)
best = float("inf")
for _ in range(reps):
    t = time.perf_counter()
    torch.matmul(a, b)
    best = min(best, time.perf_counter() - t)
print(json.dumps({"n": n, "dtype": dtype, "threads": threads, "gflops": 2 * n**3 / best / 1e9}))

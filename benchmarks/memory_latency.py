"""Retrieval latency of the memory with N experiences in Qdrant's local mode (a folder).

    python benchmarks/memory_latency.py --n 10000 --out benchmarks/results/memory-latency.json

Fills a fresh folder with N synthetic experiences (varied kernel kinds, shapes, stages and
lessons, embedded by the default model), gives them random Q-values and visits, then times 50
retrievals for each stage: the embedding of a new query, and Qdrant's prefetch + formula
ranking. A query asked before (every round of a run after its first asks the same) skips the
embedding (`MemoryStore.query_vector` keeps it): `retrieve_repeat` times that, through
`retrieve` itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

KINDS = ["pointwise", "reduction", "scan", "pool", "extern:mm", "extern:conv"]
IDEAS = ["hold the row in registers", "loop over 4096-column chunks", "split long rows across "
         "programs", "fuse the epilogue into the GEMM", "one program per row with 8 warps",
         "larger blocks cut launch overhead", "read each input once", "store in the output dtype"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from qdrant_client import models

    from kernelwright.memory.experience import Experience, Outcome, Signature
    from kernelwright.memory.store import MemoryStore, _embedder, _payload, unit

    rng = random.Random(0)
    embedder = _embedder("local", "", None)
    store = MemoryStore(tempfile.mkdtemp(prefix="kw-latency-"), embedder)
    started = time.perf_counter()
    for start in range(0, args.n, 256):
        batch = []
        for i in range(start, min(args.n, start + 256)):
            kinds = rng.sample(KINDS, rng.randint(1, 3))
            shape = [2 ** rng.randint(4, 14), 2 ** rng.randint(4, 14)]
            stage = rng.choice(["draft", "refine"])
            batch.append(Experience(
                problem=f"synthetic_{i}", signature=Signature(ops=kinds, shapes=[shape]),
                hardware=rng.choice(["NVIDIA H100 80GB HBM3", "cpu-16"]), backend="triton",
                stage=stage, lesson=f"{rng.choice(IDEAS)}; then {rng.choice(IDEAS)}",
                outcome=Outcome(status=rng.choice(["correct", "incorrect", "build_error"])),
                q_draft=rng.uniform(-1, 1), q_refine=rng.uniform(-1, 1),
                visits_draft=rng.randint(0, 9), visits_refine=rng.randint(0, 9)))
        vectors = [unit(v) for v in embedder.embed([e.text() for e in batch])]
        store.client.upsert(store.collection, [models.PointStruct(
            id=e.id, vector=v, payload=_payload(e))
            for e, v in zip(batch, vectors, strict=True)], wait=True)
    fill_s = time.perf_counter() - started
    queries = [f"{' + '.join(rng.sample(KINDS, 2))} over {2 ** rng.randint(4, 14)}x4096 "
               f"(float32) on NVIDIA H100 80GB HBM3 (triton), draft:" for _ in range(50)]
    rows = {}
    for stage in ("draft", "refine"):
        embed_ms, qdrant = [], []
        for q in queries:
            t0 = time.perf_counter()
            vector = unit(embedder.embed([q])[0])
            t1 = time.perf_counter()
            store.rank(stage, vector, n=3, k_factor=4, w=0.5)  # the prefetch and the formula
            t2 = time.perf_counter()
            embed_ms.append((t1 - t0) * 1e3)
            qdrant.append((t2 - t1) * 1e3)
        total_ms = [e + q for e, q in zip(embed_ms, qdrant, strict=True)]
        repeat = []
        for q in queries:
            store.query_vector(q)  # asked once before
            t0 = time.perf_counter()
            store.retrieve(stage, q, n=3, k_factor=4, w=0.5)
            repeat.append((time.perf_counter() - t0) * 1e3)
        rows[stage] = {"retrieve_median_ms": statistics.median(total_ms),
                       "retrieve_p90_ms": statistics.quantiles(total_ms, n=10)[8],
                       "embed_median_ms": statistics.median(embed_ms),
                       "qdrant_median_ms": statistics.median(qdrant),
                       "qdrant_p90_ms": statistics.quantiles(qdrant, n=10)[8],
                       "retrieve_repeat_median_ms": statistics.median(repeat),
                       "retrieve_repeat_p90_ms": statistics.quantiles(repeat, n=10)[8]}
    record = {"n": store.count(), "fill_s": fill_s, "machine": platform.processor() or
              platform.machine(), "cpus": __import__("os").cpu_count(), "stages": rows,
              "date": time.strftime("%Y-%m-%d")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(f"{record['n']} experiences (filled in {fill_s:.0f} s), {record['cpus']} CPUs\n")
    print("| stage | new query: median ms | p90 | of which embedding | Qdrant (prefetch + formula) "
          "| asked before: median ms | p90 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for stage, r in rows.items():
        print(f"| {stage} | {r['retrieve_median_ms']:.1f} | {r['retrieve_p90_ms']:.1f} | "
              f"{r['embed_median_ms']:.1f} | {r['qdrant_median_ms']:.1f} | "
              f"{r['retrieve_repeat_median_ms']:.1f} | {r['retrieve_repeat_p90_ms']:.1f} |")


if __name__ == "__main__":
    main()

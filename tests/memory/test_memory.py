"""The experience memory: Q arithmetic, the blended ranking inside Qdrant, persistence across
runs, export and import, clear errors, and the graph's remember node."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kernelwright.api import optimize
from kernelwright.config import MemoryConfig, RunConfig
from kernelwright.core.errors import KernelwrightError
from kernelwright.memory.experience import (
    Experience,
    Outcome,
    Signature,
    draft_reward,
    q_update,
    refine_reward,
)
from kernelwright.memory.store import MemoryStore, _embedder, open_store

ROOT = Path(__file__).resolve().parents[2]
RMSNORM = ROOT / "examples" / "problems" / "level1" / "05_rmsnorm.py"


def embedder():
    return _embedder("local", "", None)


def experience(lesson, stage="draft", **kw):
    kw.setdefault("outcome", Outcome(status="correct"))
    kw.setdefault("signature", Signature(ops=["reduction"], shapes=[[16, 64]]))
    return Experience(problem="p", hardware="cpu-2", backend="triton", stage=stage, lesson=lesson,
                      **kw)


def test_q_update_and_rewards():
    assert q_update(0.0, 1.0, 0.3) == pytest.approx(0.3)
    assert q_update(0.3, -1.0, 0.5) == pytest.approx(-0.35)
    assert draft_reward("correct") == 0.5 and draft_reward("build_error") == -1.0  # not timed
    assert refine_reward("correct", 100.0, 50.0) == pytest.approx(math.tanh(math.log(2)))
    assert refine_reward("correct", 50.0, 100.0) == pytest.approx(-math.tanh(math.log(2)))
    assert refine_reward("incorrect", 100.0, 10.0) == -1.0


def test_rewards_see_speed_against_eager_and_the_floor():
    """A correct draft 7x slower than eager at 0.05 of the floor is worth about nothing, one twice
    as fast at 0.9 of it nearly a full success; any failure is worse than either. Refining
    weighs the gain over the best before it and the floor."""
    slow = draft_reward("correct", 700.0, 100.0, 0.05)
    fast = draft_reward("correct", 50.0, 100.0, 0.9)
    assert slow == pytest.approx(0.5 + 0.25 * math.tanh(math.log(1 / 7)) + 0.25 * (0.1 - 1))
    assert -1.0 < slow < 0.05 and fast == pytest.approx(0.5 + 0.25 * 0.6 + 0.25 * 0.8)
    assert draft_reward("correct", 100.0, 100.0, 0.5) == pytest.approx(0.5)
    assert draft_reward("correct", 50.0, 100.0, 3.0) == draft_reward("correct", 50.0, 100.0, 1.0)
    assert refine_reward("correct", 100.0, 50.0, 1.0) == pytest.approx(0.75 * 0.6 + 0.25)
    assert refine_reward("correct", 100.0, 100.0, 0.5) == pytest.approx(0.0)
    assert refine_reward("correct", None, 50.0) == 0.0 and refine_reward("timeout", None, None) == -1


def test_lessons_say_what_was_tried_on_what_and_what_it_measured():
    from kernelwright.core.records import Candidate
    from kernelwright.memory.learn import lesson_of

    sig = Signature(ops=["reduction"], shapes=[[4096, 8192]], cols=[8192])
    parent = Candidate(id=1, stage="draft", change="the writer's default", status="correct",
                       runtime_us=200.0, eager_us=300.0, sol_fraction=0.4)
    child = Candidate(id=2, parent=1, stage="refine", change="split rows 4 ways",
                      status="correct", runtime_us=100.0, eager_us=300.0, sol_fraction=0.8)
    text = lesson_of(child, parent, sig, "NVIDIA H200")
    for part in ("refine", "split rows 4 ways", "reduction over 4096x8192", "NVIDIA H200",
                 "100.0 us", "2.00x its parent (200.0 us)", "3.00x eager", "0.80 of the SOL floor"):
        assert part in text, (part, text)
    broken = Candidate(id=3, parent=1, stage="refine", change="BLOCK_C=65536",
                       status="build_error", reason="compile",
                       message="triton.CompilationError:\n  out of resources: shared memory")
    text = lesson_of(broken, parent, sig, "NVIDIA H200", critic="BLOCK_C=65536: build_error")
    assert "build_error: triton.CompilationError: out of resources: shared memory" in text
    assert "Critic" not in text  # the offline critic's words add nothing to the figures
    untimed = child.model_copy(update={"runtime_us": None, "eager_us": None, "sol_fraction": None})
    text = lesson_of(untimed, parent, sig, "cpu", critic="tiles of 2 rows read the row once")
    assert "correct; not timed on this machine" in text and text.endswith(
        "Critic: tiles of 2 rows read the row once")


def test_retrieval_ranks_by_the_blended_formula(tmp_path):
    store = MemoryStore(str(tmp_path / "m"), embedder())
    lessons = ["softmax over long rows: hold the row in registers",
               "softmax: one program per row with 8 warps",
               "matrix multiply with a fused relu epilogue"]
    exps = [experience(x) for x in lessons]
    for e in exps:
        store.add(e)
    query = "softmax reduction over rows"
    q_vec = np.array(embedder().embed([query])[0])

    def expected(e, w, bonus=0.1):
        v = np.array(embedder().embed([e.text()])[0])
        sim = float(q_vec @ v / np.linalg.norm(q_vec) / np.linalg.norm(v))
        return (1 - w) * sim + w * e.q_draft + bonus / math.sqrt(1 + e.visits_draft)

    def ranked(w):
        return store.retrieve("draft", query, n=3, k_factor=2, w=w)

    similarity_only = ranked(0.0)
    assert similarity_only[-1][0].lesson == lessons[2]  # the matmul lesson is least similar
    for _ in range(3):  # the matmul lesson keeps paying off when drafting
        store.update_q([exps[2].id], "draft", 1.0, alpha=0.5)
    for _ in range(3):
        store.update_q([exps[0].id], "draft", -1.0, alpha=0.5)
    got = ranked(0.5)
    now = {e.id: e for e, _ in got}
    for e, score in got:
        assert score == pytest.approx(expected(now[e.id], 0.5), abs=1e-4)
    assert [e.lesson for e, _ in got] == [lessons[2], lessons[1], lessons[0]]
    assert now[exps[2].id].q_draft == pytest.approx(0.875) and now[exps[2].id].visits_draft == 3
    assert [e.lesson for e, _ in ranked(0.0)] == [e.lesson for e, _ in similarity_only]
    other = experience("matmul tiles of 128x128", signature=Signature(ops=["extern:mm"]))
    store.add(other)
    assert [e.id for e, _ in store.retrieve("draft", "matmul", 5, op_kinds=["extern:mm"])] == \
        [other.id]
    assert store.retrieve("draft", "matmul", 5, hardware="NVIDIA H100 80GB HBM3") == []


def test_near_duplicates_merge_and_export_import_round_trip(tmp_path):
    store = MemoryStore(str(tmp_path / "a"), embedder())
    first = store.add(experience("softmax: hold the row in registers"))
    again = store.add(experience("softmax: hold the row in registers", outcome=Outcome(
        status="correct", runtime_us=10.0)))
    other = store.add(experience("layernorm: two passes", stage="refine"))
    assert again == first and store.count() == 2
    assert store.get(first).outcome.runtime_us == 10.0  # the better outcome was kept
    store.update_q([other], "refine", 1.0, 0.3)
    n = store.export(tmp_path / "mem.jsonl")
    copy = MemoryStore(str(tmp_path / "b"), embedder())
    assert copy.import_(tmp_path / "mem.jsonl") == n == 2
    assert sorted(e.model_dump_json() for e in copy.all()) == \
        sorted(e.model_dump_json() for e in store.all())
    assert copy.retrieve("refine", "layernorm", 1)[0][0].q_refine == pytest.approx(0.3)
    (tmp_path / "bad.jsonl").write_text("not json\n")
    with pytest.raises(KernelwrightError, match="bad.jsonl: not a memory export"):
        copy.import_(tmp_path / "bad.jsonl")


def test_locked_and_corrupt_stores_say_which_folder_and_the_fix(tmp_path):
    folder = tmp_path / "locked"
    held = MemoryStore(str(folder), embedder())
    with pytest.raises(KernelwrightError, match=f"{folder}: the memory folder is in use by "
                                                "another client.*Fix"):
        MemoryStore(str(folder), embedder())
    held.close()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{ not json")
    with pytest.raises(KernelwrightError, match=f"{broken}: the memory store cannot be read.*Fix"):
        MemoryStore(str(broken), embedder())


RUN = """
import sys
from kernelwright import RunConfig, optimize
if __name__ == "__main__":
    result = optimize(sys.argv[1], RunConfig(candidates=1), thread_id=sys.argv[2])
    print("\\n".join(result.log))
"""


def test_two_runs_share_one_folder_one_after_the_other(tmp_path, private_memory):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    logs = [subprocess.run([sys.executable, str(script), str(RMSNORM), f"run{k}"], check=True,
                           capture_output=True, text=True, cwd=ROOT).stdout for k in (1, 2)]
    assert "recalled" not in logs[0]  # a cold memory
    assert "recalled: 1 experience(s)" in logs[1]  # the first run's draft, read from disk
    store = open_store(MemoryConfig(path=private_memory))
    assert {e.run_id for e in store.all()} == {"run1"}  # the same draft again: merged


def test_the_remember_node_writes_experiences_and_updates_what_was_recalled(private_memory):
    config = RunConfig(candidates=1)
    optimize(RMSNORM, config, thread_id="first")
    store = open_store(config.memory)
    [written] = store.all()
    assert written.stage == "draft" and written.outcome.status == "correct"
    assert written.q_draft == draft_reward("correct") and written.visits_draft == 0 and written.configs
    assert "correct; not timed on this machine" in written.lesson and "draft" in written.lesson
    second = optimize(RMSNORM, config, thread_id="second")
    assert second.tree[0].memory == [written.id]  # the coder saw it
    after = store.get(written.id)
    reward = draft_reward("correct")
    assert after.visits_draft == 1 and after.q_draft == pytest.approx(q_update(reward, reward, 0.3))


def test_the_offline_coder_starts_from_a_remembered_configuration():
    from kernelwright.agents.coder import offline_code, transfer
    from kernelwright.core.problem import load_problem
    from kernelwright.writer.sizes import hint
    from kernelwright.writer.write import plan

    problem = load_problem(ROOT / "examples" / "problems" / "level1" / "03_softmax.py").shrink(1 << 14)
    made = plan(problem)
    [group] = made.groups
    cols = hint(group.cols)  # the row length it was planned at, as memory records it
    wide = {"block_r": 1, "block_c": 4 * cols, "num_warps": 16, "persistent": True}
    remembered = [{"kind": "reduction", "cols": 2 * cols, "config": wide}]
    [mapped] = transfer(made, remembered)
    assert mapped.persistent and mapped.block_c == cols and mapped.num_warps == 16
    assert transfer(made, [{"kind": "pointwise", "cols": 0, "config": {"block_r": 64}}]) is None
    first = offline_code(problem, "draft", 0, None, [], remembered=[remembered])
    assert first.change.startswith("remembered from a similar task: persistent")
    assert first.configs[0]["num_warps"] == 16
    assert offline_code(problem, "draft", 1, None, [], remembered=[remembered]).change == \
        "the writer's default"


def test_the_hash_embedder_is_normalised_and_word_sensitive():
    from kernelwright.memory.embed import HashEmbedder

    a, b, c = (np.array(v) for v in HashEmbedder().embed([
        "softmax over long rows in registers", "softmax over long rows", "matmul epilogue"]))
    assert np.linalg.norm(a) == pytest.approx(1.0)
    assert a @ b > 0.5 > abs(a @ c)


def test_a_query_asked_again_is_not_embedded_again_and_vectors_are_unit(tmp_path):
    """A run asks the same question every round: its embedding is kept. Stored vectors are unit
    length and compared by dot product (local mode renormalises every vector on a cosine query),
    so scores are still cosines."""
    from kernelwright.memory.embed import HashEmbedder

    class Counting(HashEmbedder):
        calls = 0

        def embed(self, texts):
            Counting.calls += len(texts)
            return [[3 * x for x in v] for v in super().embed(texts)]  # not unit length

    store = MemoryStore(str(tmp_path / "m"), Counting())
    store.add(experience("softmax: hold the row in registers"))
    assert store.client.get_collection(store.collection).config.params.vectors.distance == "Dot"
    before = Counting.calls
    first = store.retrieve("draft", "softmax rows", n=1, w=0.0)
    again = store.retrieve("draft", "softmax rows", n=1, w=0.0)
    assert Counting.calls == before + 1 and first[0][1] == pytest.approx(again[0][1])
    assert -1.0 <= first[0][1] - 0.1 <= 1.0  # a cosine (plus the exploration bonus of 0.1)
    [point] = store.client.scroll(store.collection, with_vectors=True)[0]
    assert float(np.linalg.norm(point.vector)) == pytest.approx(1.0)


def test_experiences_stored_whole_by_older_versions_still_read(tmp_path):
    """Payloads now hold the experience as one JSON string beside the fields filters and the
    formula read; a store written before (the whole experience as fields) still reads, ranks and
    takes Q updates."""
    from qdrant_client import models

    from kernelwright.memory.embed import HashEmbedder
    from kernelwright.memory.store import unit

    store = MemoryStore(str(tmp_path / "m"), HashEmbedder())
    old = experience("softmax: hold the row in registers", q_draft=0.25)
    store.client.upsert(store.collection, [models.PointStruct(
        id=old.id, vector=unit(store.embedder.embed([old.text()])[0]),
        payload=old.model_dump(mode="json"))], wait=True)
    new = experience("matmul: 3xTF32 dots with K-major copies", configs=[{"kind": "matmul"}])
    store.add(new)
    assert {e.lesson for e in store.all()} == {old.lesson, new.lesson}
    [(found, _)] = store.retrieve("draft", "softmax registers", n=1, k_factor=2, w=0.0)
    assert found.id == old.id and found.q_draft == 0.25
    store.update_q([old.id, new.id], "draft", 1.0, alpha=0.5)
    assert store.get(old.id).q_draft == pytest.approx(0.625)
    assert store.get(new.id).visits_draft == 1 and store.get(new.id).configs == [{"kind": "matmul"}]

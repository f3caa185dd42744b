"""The experience store on Qdrant: embedded local mode (a folder) by default, a server for teams.

Retrieval for a stage over-fetches k_factor x n experiences by embedding similarity (a Qdrant
prefetch), then ranks them inside Qdrant with a formula query,

    (1 - w) * similarity + w * q_<stage> + bonus / sqrt(1 + visits_<stage>)

and keeps the top n (w = 0 is similarity-only). Vectors are stored unit-length and compared
by dot product (the cosine): Qdrant's local mode renormalises every stored vector on each cosine
query, which at 10k experiences cost more than the rest of a retrieval; and its search runs on
one BLAS thread (BLAS threads that spin after a product took the cores from the next query's
embedding, doubling it on two cores). A query's embedding is kept (QUERY_CACHE texts): a run asks
the same question every round. Local mode locks its folder to one client per process:
`open_store` keeps one store per folder for the process; evaluation workers never open it.
Every write goes to Qdrant before the call returns, so a crash loses no reported update.
"""

from __future__ import annotations

import json
import math
import threading
from functools import cache
from pathlib import Path
from typing import Any

from kernelwright.config import MemoryConfig
from kernelwright.core.errors import KernelwrightError
from kernelwright.memory.embed import Embedder
from kernelwright.memory.experience import Experience, Stage, q_update


def default_path() -> Path:
    import platformdirs

    return platformdirs.user_data_path("kernelwright") / "memory"


def open_store(config: MemoryConfig) -> MemoryStore:
    """The process's store for this folder or server (Qdrant local mode allows one client)."""
    return _open(str(config.url or config.path or default_path()), config.collection,
                 config.embedder, config.embed_model, config.embed_base_url)


@cache
def _open(where: str, collection: str, embedder: str, model: str, base_url: str | None
          ) -> MemoryStore:
    import atexit

    store = MemoryStore(where, _embedder(embedder, model, base_url), collection)
    atexit.register(store.close)  # before interpreter teardown, which Qdrant's own close trips on
    return store


@cache
def _embedder(kind: str, model: str, base_url: str | None) -> Embedder:
    from kernelwright.memory.embed import HashEmbedder, LocalEmbedder, OpenAIEmbedder

    if kind == "hash":
        return HashEmbedder()
    return LocalEmbedder() if kind == "local" else OpenAIEmbedder(model, base_url, None)


QUERY_CACHE = 256  # query texts whose embeddings are kept


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


# A point's payload: what filters and the formula read, as fields (stage, hardware, backend,
# signature.ops, q_* and visits_*); the rest of the experience as one JSON string, which local
# mode copies in O(1) when the formula reads a candidate (nested lists and dicts it deep-copied).
LIVE = ("q_draft", "q_refine", "visits_draft", "visits_refine")


def _payload(exp: Experience) -> dict[str, Any]:
    return {"stage": exp.stage, "hardware": exp.hardware, "backend": exp.backend,
            "signature": {"ops": exp.signature.ops}, **{k: getattr(exp, k) for k in LIVE},
            "experience": exp.model_dump_json(exclude=set(LIVE))}


def _experience(payload: dict[str, Any] | None) -> Experience:
    """The experience of a payload (the format above, or a whole experience: older stores)."""
    assert payload is not None, "points are always read with their payload"
    if "experience" not in payload:
        return Experience.model_validate(payload)
    return Experience.model_validate_json(payload["experience"]).model_copy(
        update={k: payload[k] for k in LIVE if k in payload})


class MemoryStore:
    def __init__(self, where: str, embedder: Embedder, collection: str = "experiences"):
        from qdrant_client import QdrantClient, models

        self.where, self.embedder, self.collection = where, embedder, collection
        self._lock = threading.Lock()  # graph nodes run in threads; one client serves them
        self._queries: dict[str, list[float]] = {}  # query text -> unit vector (QUERY_CACHE)
        self._blas: Any = None  # a threadpoolctl controller, made on the first search
        remote = where.startswith(("http://", "https://"))
        try:
            if remote:
                self.client = QdrantClient(url=where)
            else:
                Path(where).mkdir(parents=True, exist_ok=True)
                self.client = QdrantClient(path=where)
            if not self.client.collection_exists(collection):
                self.client.create_collection(collection, vectors_config=models.VectorParams(
                    size=embedder.dim, distance=models.Distance.DOT))  # of unit vectors
            size = self.client.get_collection(collection).config.params.vectors.size  # type: ignore[union-attr]
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise KernelwrightError(
                    f"{where}: the memory folder is in use by another client, most likely another "
                    "run (Qdrant local mode allows one client per folder). Fix: let that run "
                    "finish, give this run another memory.path, or share a Qdrant server "
                    "(memory.url).") from None
            raise self._corrupt(exc) from None
        except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
            raise self._corrupt(exc) from None
        except Exception as exc:
            if remote:
                raise KernelwrightError(f"{where}: cannot reach the Qdrant server ({exc}). Fix: "
                                        "start it, or drop memory.url to use a local folder.") from None
            raise self._corrupt(exc) from None
        if size != embedder.dim:
            raise KernelwrightError(
                f"{where}: collection '{collection}' holds {size}-dimensional vectors but the "
                f"embedder ({embedder.name}) makes {embedder.dim}. Fix: use the embedder the "
                "memory was built with, or another memory.collection.")

    def _corrupt(self, exc: BaseException) -> KernelwrightError:
        return KernelwrightError(
            f"{self.where}: the memory store cannot be read ({type(exc).__name__}: {exc}). Fix: "
            f"move the folder aside (its experiences can be re-imported from an export), or run "
            "`kernelwright memory reset`.")

    # writing ------------------------------------------------------------------------------
    def add(self, exp: Experience, merge_above: float = 0.97) -> str:
        """Store `exp`; a near-duplicate (same stage and backend, similarity >= merge_above)
        is merged into the existing experience instead. Returns the id kept."""
        from qdrant_client import models

        vector = unit(self.embedder.embed([exp.text()])[0])
        with self._lock:
            near = self.client.query_points(
                self.collection, query=vector, limit=1, with_payload=True,
                query_filter=models.Filter(must=[
                    models.FieldCondition(key="stage", match=models.MatchValue(value=exp.stage)),
                    models.FieldCondition(key="backend", match=models.MatchValue(value=exp.backend)),
                ])).points
            if near and near[0].score >= merge_above:
                old = _experience(near[0].payload)
                merged = _merge(old, exp)
                self.client.upsert(self.collection, [models.PointStruct(
                    id=old.id, vector=vector, payload=_payload(merged))], wait=True)
                return old.id
            self.client.upsert(self.collection, [models.PointStruct(
                id=exp.id, vector=vector, payload=_payload(exp))], wait=True)
            return exp.id

    def update_q(self, ids: list[str], stage: Stage, reward: float, alpha: float) -> list[float]:
        """Move each experience's Q for `stage` toward `reward`; returns the new values."""
        out = []
        with self._lock:
            for point in self.client.retrieve(self.collection, ids, with_payload=True):
                exp = _experience(point.payload)
                q = q_update(getattr(exp, f"q_{stage}"), reward, alpha)
                self.client.set_payload(self.collection, {
                    f"q_{stage}": q, f"visits_{stage}": getattr(exp, f"visits_{stage}") + 1},
                    points=[point.id], wait=True)
                out.append(q)
        return out

    # reading ------------------------------------------------------------------------------
    def retrieve(self, stage: Stage, text: str, n: int, k_factor: int = 4, w: float = 0.5,
                 bonus: float = 0.1, hardware: str | None = None, backend: str | None = None,
                 op_kinds: list[str] | None = None) -> list[tuple[Experience, float]]:
        """The top n for `stage` under the blended score (see the module docstring); optional
        filters keep one device's, one backend's, or experiences sharing a kernel kind."""
        if n <= 0:
            return []
        return self.rank(stage, self.query_vector(text), n, k_factor, w, bonus, hardware,
                         backend, op_kinds)

    def query_vector(self, text: str) -> list[float]:
        """The unit embedding of a query, kept for the next time it is asked."""
        with self._lock:
            found = self._queries.get(text)
        if found is None:
            found = unit(self.embedder.embed([text])[0])
            with self._lock:
                if len(self._queries) >= QUERY_CACHE:
                    self._queries.pop(next(iter(self._queries)))
                self._queries[text] = found
        return found

    def rank(self, stage: Stage, vector: list[float], n: int, k_factor: int = 4, w: float = 0.5,
             bonus: float = 0.1, hardware: str | None = None, backend: str | None = None,
             op_kinds: list[str] | None = None) -> list[tuple[Experience, float]]:
        """`retrieve` for a query already embedded: the prefetch and the formula, in Qdrant."""
        from qdrant_client import models

        must: list[models.Condition] = [
            models.FieldCondition(key=k, match=models.MatchValue(value=v))
            for k, v in (("hardware", hardware), ("backend", backend)) if v]
        if op_kinds:
            must.append(models.FieldCondition(key="signature.ops",
                                              match=models.MatchAny(any=op_kinds)))
        formula = models.FormulaQuery(formula=models.SumExpression(sum=[
            models.MultExpression(mult=[1.0 - w, "$score"]),
            models.MultExpression(mult=[w, f"q_{stage}"]),
            models.DivExpression(div=models.DivParams(left=bonus, right=models.SqrtExpression(
                sqrt=models.SumExpression(sum=[1.0, f"visits_{stage}"])))),
        ]), defaults={f"q_{stage}": 0.0, f"visits_{stage}": 0})
        with self._lock, self._one_blas_thread():
            points = self.client.query_points(
                self.collection, prefetch=models.Prefetch(
                    query=vector, limit=k_factor * n,
                    filter=models.Filter(must=must) if must else None),
                query=formula, limit=n, with_payload=True).points
        return [(_experience(p.payload), p.score) for p in points]

    def _one_blas_thread(self) -> Any:
        """A context in which NumPy's BLAS (local mode's search) runs on one thread."""
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        return self._blas.limit(limits=1, user_api="blas")

    def search(self, text: str, n: int = 10) -> list[tuple[Experience, float]]:
        """Plain similarity search (the CLI's `memory search`)."""
        vector = self.query_vector(text)
        with self._lock:
            points = self.client.query_points(self.collection, query=vector, limit=n,
                                              with_payload=True).points
        return [(_experience(p.payload), p.score) for p in points]

    def get(self, exp_id: str) -> Experience | None:
        with self._lock:
            found = self.client.retrieve(self.collection, [exp_id], with_payload=True)
        return _experience(found[0].payload) if found else None

    def all(self) -> list[Experience]:
        out, offset = [], None
        with self._lock:
            while True:
                points, offset = self.client.scroll(self.collection, limit=256, offset=offset,
                                                    with_payload=True)
                out += [_experience(p.payload) for p in points]
                if offset is None:
                    return out

    def count(self) -> int:
        with self._lock:
            return self.client.count(self.collection).count

    # moving -------------------------------------------------------------------------------
    def export(self, file: Path) -> int:
        """One JSON experience per line; vectors are not exported (import re-embeds)."""
        experiences = self.all()
        file.write_text("".join(e.model_dump_json() + "\n" for e in experiences))
        return len(experiences)

    def import_(self, file: Path) -> int:
        from pydantic import ValidationError
        from qdrant_client import models

        try:
            experiences = [Experience.model_validate_json(line) for line in
                           file.read_text().splitlines() if line.strip()]
        except (OSError, ValidationError) as exc:
            raise KernelwrightError(f"{file}: not a memory export ({str(exc)[:200]}). Fix: use "
                                    "a file written by `kernelwright memory export`.") from None
        for start in range(0, len(experiences), 128):
            batch = experiences[start:start + 128]
            vectors = [unit(v) for v in self.embedder.embed([e.text() for e in batch])]
            with self._lock:
                self.client.upsert(self.collection, [
                    models.PointStruct(id=e.id, vector=v, payload=_payload(e))
                    for e, v in zip(batch, vectors, strict=True)], wait=True)
        return len(experiences)

    def reset(self) -> None:
        from qdrant_client import models

        with self._lock:
            self.client.delete_collection(self.collection)
            self.client.create_collection(self.collection, vectors_config=models.VectorParams(
                size=self.embedder.dim, distance=models.Distance.COSINE))

    def close(self) -> None:
        self.client.close()


def _merge(old: Experience, new: Experience) -> Experience:
    """Keep the better outcome's lesson and code; the learned values and visits carry over."""
    better = new.outcome.status == "correct" and (
        old.outcome.status != "correct" or (new.outcome.runtime_us or float("inf")) <
        (old.outcome.runtime_us or float("inf")))
    keep = new if better else old
    return keep.model_copy(update=dict(id=old.id, q_draft=old.q_draft, q_refine=old.q_refine,
                                       visits_draft=old.visits_draft,
                                       visits_refine=old.visits_refine, created=old.created))


def describe(exp: Experience, score: float | None = None) -> dict[str, Any]:
    """One row of `kernelwright memory search` and friends."""
    return {"id": exp.id[:8], "score": f"{score:.3f}" if score is not None else "",
            "stage": exp.stage, "problem": exp.problem, "outcome": exp.outcome.status,
            "q_draft": f"{exp.q_draft:+.2f}", "q_refine": f"{exp.q_refine:+.2f}",
            "lesson": exp.lesson[:80]}

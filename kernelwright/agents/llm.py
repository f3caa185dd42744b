"""The LLM policy's plumbing: a ChatOpenAI per role, prompt files, structured replies, code
from fenced blocks, token counts and retries.

Transport failures (connection refused, timeouts, 429, 5xx) are retried with backoff by the
OpenAI client (`max_retries`); a reply without the expected code or JSON is asked again up to
`attempts` times. What still fails raises LLMError, which the graph records in the run's
state and ends the run on, keeping the tree.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kernelwright.config import RoleConfig

PROMPTS = Path(__file__).parent / "prompts"
FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


class LLMError(Exception):
    """The endpoint failed or kept replying without what was asked, after retries. `tokens`:
    what the failed exchange still spent (replies without code count against the budget)."""

    def __init__(self, message: str, tokens: int = 0):
        super().__init__(message)
        self.tokens = tokens

    def outcome(self, role: str) -> str:
        """What the run's end says about this failure of `role`'s model (the one wording
        every role uses: the run ends, its tree is kept)."""
        return f"LLM failure, run ended with its tree kept: {role}: {self}"


@dataclass
class Reply:
    text: str
    parsed: Any = None  # the structured output, when a schema was given
    tokens: int = 0


def prompt(name: str, **values: Any) -> str:
    """A prompt file from agents/prompts/ with its {placeholders} filled."""
    return (PROMPTS / f"{name}.md").read_text().format(**values)


def fenced_code(text: str) -> str | None:
    """The code of the reply: the last fenced block that defines ModelNew, else the last one."""
    blocks = FENCE.findall(text)
    with_model = [b for b in blocks if "class ModelNew" in b]
    chosen = (with_model or blocks or [None])[-1]
    return chosen.strip() + "\n" if chosen else None


def ask(role: RoleConfig, text: str, schema: type[BaseModel] | None = None,
        want_code: bool = False, attempts: int = 3) -> Reply:
    """One exchange with the role's model; raises LLMError when it cannot be had."""
    import openai
    from langchain_core.callbacks import UsageMetadataCallbackHandler
    from langchain_core.runnables import RunnableConfig
    from langchain_openai import ChatOpenAI

    base_url = role.base_url or os.environ.get("OPENAI_BASE_URL")
    model = ChatOpenAI(model=role.model, base_url=base_url, temperature=role.temperature,
                       api_key=role.api_key or os.environ.get("OPENAI_API_KEY") or "none",
                       max_retries=role.max_retries, timeout=role.timeout_s)
    usage = UsageMetadataCallbackHandler()  # counts every reply, parsed or not
    run = RunnableConfig(callbacks=[usage])
    problem, structured = "", True

    def tokens() -> int:
        return sum(int(u.get("total_tokens", 0)) for u in usage.usage_metadata.values())

    for _ in range(attempts):
        try:
            if schema is None:
                message = model.invoke(text, config=run)
                content = str(message.content)
                if not want_code or fenced_code(content):
                    return Reply(text=content, tokens=tokens())
                problem = "the reply had no fenced code block defining ModelNew"
                continue
            if structured:
                fmt = {"type": "json_schema", "json_schema": {
                    "name": schema.__name__, "schema": schema.model_json_schema()}}
                message = model.bind(response_format=fmt).invoke(text, config=run)
            else:  # an endpoint without json_schema support: ask for plain JSON
                message = model.invoke(text + "\n\nReply with one JSON object only.", config=run)
            parsed = _parse_json(str(message.content), schema)  # ours: a bad reply still counts
            if parsed is not None:
                return Reply(text=str(message.content), parsed=parsed, tokens=tokens())
            problem = f"the reply did not match {schema.__name__}"
        except openai.BadRequestError as exc:
            if schema is None or not structured:
                raise LLMError(f"{role.model} at {base_url or 'OpenAI'}: {exc}", tokens()) from None
            structured = False
        except (openai.APIError, OSError) as exc:
            raise LLMError(f"{role.model} at {base_url or 'OpenAI'}: "
                           f"{type(exc).__name__}: {exc}", tokens()) from None
    raise LLMError(f"{role.model}: {problem} ({attempts} attempts)", tokens())


def _parse_json(text: str, schema: type[BaseModel]) -> BaseModel | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        return schema.model_validate(json.loads(text[start:end + 1]))
    except (json.JSONDecodeError, ValidationError):
        return None

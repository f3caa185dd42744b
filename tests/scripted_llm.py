"""A small OpenAI-compatible server on 127.0.0.1 that answers with scripted replies.

Each POST /v1/chat/completions takes the next reply from the script. A reply is a string (the
message content), an int (that HTTP status, e.g. 500 to exercise retries) or "DOWN" (the server
closes for good: every later request is refused). Requests are recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedLLM:
    def __init__(self, script: list[str | int]):
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.tokens_served = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                reply = owner.script.pop(0) if owner.script else 503
                if reply == "DOWN":
                    self.send_response(503)
                    self.end_headers()
                    threading.Thread(target=owner.stop, daemon=True).start()
                    return
                if isinstance(reply, int):
                    self.send_response(reply)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": "scripted"}}).encode())
                    return
                prompt = sum(len(str(m.get("content", ""))) // 4 for m in body["messages"])
                completion = len(reply) // 4
                owner.tokens_served += prompt + completion
                payload = {
                    "id": f"chatcmpl-{len(owner.requests)}", "object": "chat.completion",
                    "created": 0, "model": body.get("model", "scripted"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                              "total_tokens": prompt + completion},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedLLM:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __exit__(self, *exc: Any) -> None:
        try:
            self.stop()
        except OSError:
            pass


RELU = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, {body}, mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        relu_kernel[(triton.cdiv(x.numel(), {block}),)](x, y, x.numel(), BLOCK={block})
        return y
# scripted-runtime: {runtime}
'''


def relu_reply(body="tl.maximum(x, 0.0)", block=1024, runtime=100.0):
    """A reply holding a ReLU candidate: its body, its block and a scripted time to report."""
    return "Here it is:\n```python\n" + RELU.format(body=body, block=block, runtime=runtime) + "```\n"

"""A small OpenAI-compatible completions server over a local causal LM, for the asked-teacher tests: the real
OpenAI client talks to it over HTTP, as it would to llama.cpp's llama-server or vLLM."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


def serve(model, tokenizer, logprobs: bool = True) -> tuple[str, ThreadingHTTPServer]:
    """Start it on a free local port; returns (base URL, server). ``logprobs`` False answers without them."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet tests
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            ids = tokenizer(body["prompt"], return_tensors="pt", add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logp = model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
            values, indices = logp.topk(int(body.get("logprobs") or 1))
            top = {tokenizer.decode([int(i)]): float(v) for v, i in zip(values, indices)}
            best = next(iter(top))
            lp = {"tokens": [best], "token_logprobs": [top[best]], "top_logprobs": [top], "text_offset": [0]}
            choice = {"index": 0, "text": best, "finish_reason": "length", "logprobs": lp if logprobs else None}
            self._send(
                200, {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body["model"], "choices": [choice]}
            )

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", server

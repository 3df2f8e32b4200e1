"""A local OpenAI-compatible chat-completions server for tests, with fault injection (standard library only).

Usage:
    with JudgeServer(reply="0.5", faults=["429", None]) as server:
        client = JudgeClient("gpt-test", base_url=server.base_url, cache_dir=tmp_path)
        ...
        assert server.request_count == 2

A reply is a string (the content of every answer), a list of strings (one per successful answer, the last one
repeating), or a function `(body, call_index) -> str | dict` (a dict is sent as the whole JSON body).
Faults, per call by `faults=[...]` (index = call number, None = answer normally) or for a seeded fraction of
calls (`fault_fraction`, `fraction_fault`, `seed`):
    an int or digits (429, "500"): that HTTP status with an OpenAI-style error body;
    "delay": wait `delay_s` seconds before answering (set it beyond the client timeout);
    "drop": close the connection without any response;
    "malformed": status 200 with a body that is not JSON (Content-Type application/json);
    "no_choices": status 200 with a JSON body that has no `choices`.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Sequence[str] | Callable[[dict[str, Any], int], str | dict[str, Any]]
Fault = int | str | None

FAULT_KINDS = ("delay", "drop", "malformed", "no_choices")


class JudgeServer:
    """Serves POST /v1/chat/completions on 127.0.0.1 (a free port) from a background thread."""

    def __init__(
        self,
        reply: Reply = "1.0",
        *,
        faults: Sequence[Fault] = (),
        fault_fraction: float = 0.0,
        fraction_fault: Fault = 500,
        seed: int = 0,
        delay_s: float = 2.0,
        served_model: str | None = None,
    ) -> None:
        for fault in [*faults, fraction_fault]:
            _check_fault(fault)
        self.reply = reply
        self.faults = list(faults)
        self.fault_fraction = fault_fraction
        self.fraction_fault = fraction_fault
        self.delay_s = delay_s
        self.served_model = served_model
        self.requests: list[dict[str, Any]] = []  # parsed JSON bodies of every call, faulted ones included
        self.raw_requests: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.faults_sent: list[Fault] = []  # what each call got (None = a normal answer)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._n_answers = 0
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle

    def start(self) -> JudgeServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="judge-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> JudgeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def user_contents(self) -> list[str]:
        """The content of the last message of every request received, in order."""
        with self._lock:
            return [body["messages"][-1]["content"] for body in self.requests]

    # ---- one call (run on the server's handler threads)

    def _record(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any], Fault]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_unparseable": raw.decode("utf-8", "replace")}
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            self.raw_requests.append(raw)
            self.headers.append(headers)
            fault: Fault = self.faults[index] if index < len(self.faults) else None
            if fault is None and self.fault_fraction and self._random.random() < self.fault_fraction:
                fault = self.fraction_fault
            self.faults_sent.append(fault)
        return index, body, fault

    def _answer(self, body: dict[str, Any], index: int) -> dict[str, Any]:
        with self._lock:
            answer_index = self._n_answers
            self._n_answers += 1
        if callable(self.reply):
            produced = self.reply(body, index)
        elif isinstance(self.reply, str):
            produced = self.reply
        else:
            produced = self.reply[min(answer_index, len(self.reply) - 1)]
        if isinstance(produced, dict):
            return produced
        return chat_completion_body(produced, self.served_model or str(body.get("model", "unknown")), index)


def chat_completion_body(content: str | None, model: str, index: int = 0) -> dict[str, Any]:
    """A well-formed chat.completion JSON body carrying `content`."""
    return {
        "id": f"chatcmpl-test-{index}",
        "object": "chat.completion",
        "created": 1_700_000_000 + index,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _check_fault(fault: Fault) -> None:
    if fault is None or isinstance(fault, int) or fault in FAULT_KINDS:
        return
    if isinstance(fault, str) and fault.isdigit():
        return
    raise ValueError(f"unknown fault {fault!r}: use an HTTP status or one of {FAULT_KINDS}")


def _make_handler(server: JudgeServer) -> type[BaseHTTPRequestHandler]:
    class ChatCompletionsHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            index, body, fault = server._record(dict(self.headers.items()), raw)
            if fault is None:
                self._send_json(200, server._answer(body, index))
            elif fault == "delay":
                # Waits on the stop event so that stopping the server never hangs on a sleeping handler.
                server._stopping.wait(server.delay_s)
                self._send_json(200, server._answer(body, index))
            elif fault == "drop":
                self.close_connection = True  # no response at all: the client sees the socket close
            elif fault == "malformed":
                self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [', "application/json")
            elif fault == "no_choices":
                self._send_json(200, {"id": "chatcmpl-empty", "object": "chat.completion", "model": "x"})
            else:
                status = int(fault)
                error = {"message": f"injected {status}", "type": "injected_fault", "code": str(status)}
                self._send_json(status, {"error": error})

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            self._send_raw(status, json.dumps(payload).encode("utf-8"), "application/json")

        def _send_raw(self, status: int, data: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up first (e.g. its timeout passed)

    return ChatCompletionsHandler

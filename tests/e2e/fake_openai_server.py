"""A fake OpenAI-compatible streaming server for testing `restkv bench`: it answers
/v1/completions and /v1/chat/completions with SSE chunks after controlled delays, and can
stall, drop connections, fail with an HTTP status, or serve one request at a time
(a saturated server). Not a model: every chunk is one token of text "tok"."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeConfig:
    def __init__(self, ttft=0.1, itl=0.02, mode="normal", capacity=0, status=500):
        self.ttft = ttft          # seconds before the first chunk
        self.itl = itl            # seconds between chunks
        self.mode = mode          # normal | stall | drop | status
        self.capacity = capacity  # > 0: at most this many requests served at once (FIFO-ish)
        self.status = status      # for mode "status"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found"}})

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        srv = self.server
        cfg = srv.config
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._send_json(404, {"error": {"message": "not found"}})
            return
        timing = {"recv": time.monotonic(), "chunks": [], "done": None}
        srv.count_request(body, timing)
        if cfg.mode == "status":
            self._send_json(cfg.status, {"error": {"message": "injected failure"}})
            return
        slot = srv.slots
        if slot is not None:
            slot.acquire()
        try:
            self._stream(body, cfg, timing)
        finally:
            if slot is not None:
                slot.release()

    def _stream(self, body, cfg, timing):
        chat = self.path.endswith("chat/completions")
        n = int(body.get("max_tokens", 16))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        start = time.monotonic()
        for i in range(n):
            # Sleep to absolute targets so the delays do not accumulate drift.
            target = start + cfg.ttft + i * cfg.itl
            time.sleep(max(0.0, target - time.monotonic()))
            if chat:
                obj = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "tok"}, "finish_reason": None}]}
            else:
                obj = {"object": "text_completion", "choices": [{"index": 0, "text": "tok", "finish_reason": None}]}
            self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")
            timing["chunks"].append(time.monotonic())
            if cfg.mode == "stall" and i == 0:
                time.sleep(3600)
            if cfg.mode == "drop" and i == 1:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
        usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": n + 7}
        self._chunk(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")
        timing["done"] = time.monotonic()


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # an open-loop client connects many at once

    def __init__(self, config: FakeConfig):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.config = config
        self.slots = threading.Semaphore(config.capacity) if config.capacity > 0 else None
        self.requests = []
        self.timings = []
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def count_request(self, body, timing):
        """Keeps each request's body and its timing: when it arrived and when each chunk
        and the end were written (time.monotonic(), the clock restkv bench's steady_clock
        uses, so tests can line the two up)."""
        with self._lock:
            self.requests.append(body)
            self.timings.append(timing)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self):
        self.shutdown()
        self.server_close()

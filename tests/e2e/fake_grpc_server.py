"""A fake restkv.v1.Generation gRPC server for testing `restkv bench --grpc`: Generate
streams one token a message after controlled delays and ends with a `finished` message
carrying usage; it can stall, fail with a status code, or serve one call at a time.
Not a model: every message carries token id 42 and text "tok". Stubs are generated from
proto/ with grpcio-tools into a directory the caller gives (a pytest tmp dir)."""
import pathlib
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def generate_stubs(out_dir):
    """Compiles proto/restkv/v1/generation.proto into out_dir and returns (pb2, pb2_grpc)."""
    out_dir = pathlib.Path(out_dir)
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}",
                      str(ROOT / "proto" / "restkv" / "v1" / "generation.proto")])
    assert rc == 0, "protoc failed on generation.proto"
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    from restkv.v1 import generation_pb2, generation_pb2_grpc
    return generation_pb2, generation_pb2_grpc


class FakeGrpcConfig:
    def __init__(self, ttft=0.1, itl=0.02, mode="normal", capacity=0, code="RESOURCE_EXHAUSTED",
                 prompt_tokens=7):
        self.ttft = ttft          # seconds before the first token message
        self.itl = itl            # seconds between token messages
        self.mode = mode          # normal | stall | status
        self.capacity = capacity  # > 0: at most this many calls served at once
        self.code = code          # for mode "status": a grpc.StatusCode name
        self.prompt_tokens = prompt_tokens


class FakeGrpcServer:
    def __init__(self, stubs, config: FakeGrpcConfig):
        pb2, pb2_grpc = stubs
        self.config = config
        self.requests = []   # GenerateRequest messages, in arrival order
        self.metadata = []   # each call's invocation metadata as a dict
        self.timings = []    # {"recv", "chunks": [...], "done"} in time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        slots = threading.Semaphore(config.capacity) if config.capacity > 0 else None
        fake = self

        class Servicer(pb2_grpc.GenerationServicer):
            def ListModels(self, request, context):
                return pb2.ListModelsResponse(models=[pb2.ModelInfo(id="fake", max_model_len=4096)])

            def Tokenize(self, request, context):
                # One token a word: the bench's word pool then qualifies as single tokens.
                n = len(request.text.split())
                return pb2.TokenizeResponse(token_ids=[42] * n, count=n, max_model_len=4096)

            def Generate(self, request, context):
                timing = {"recv": time.monotonic(), "chunks": [], "done": None}
                with fake._lock:
                    fake.requests.append(request)
                    fake.metadata.append(dict(context.invocation_metadata()))
                    fake.timings.append(timing)
                cfg = fake.config
                if cfg.mode == "status":
                    context.abort(getattr(grpc.StatusCode, cfg.code), "injected failure")
                if slots is not None:
                    slots.acquire()
                try:
                    n = request.max_tokens if request.HasField("max_tokens") else 16
                    start = time.monotonic()
                    for i in range(n):
                        # Sleep to absolute targets so the delays do not accumulate drift.
                        target = start + cfg.ttft + i * cfg.itl
                        time.sleep(max(0.0, target - time.monotonic()))
                        yield pb2.GenerateResponse(id="fake", token_ids=[42], text="tok")
                        timing["chunks"].append(time.monotonic())
                        if cfg.mode == "stall" and i == 0:
                            # Until the client gives up (or the server stops).
                            while context.is_active() and not fake._stop.wait(0.05):
                                pass
                            return
                    usage = pb2.Usage(prompt_tokens=cfg.prompt_tokens, completion_tokens=n,
                                      total_tokens=n + cfg.prompt_tokens)
                    yield pb2.GenerateResponse(id="fake", finished=True, finish_reason="length",
                                               usage=usage)
                    timing["done"] = time.monotonic()
                finally:
                    if slots is not None:
                        slots.release()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
        pb2_grpc.add_GenerationServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self._stop.set()
        self.server.stop(grace=0)

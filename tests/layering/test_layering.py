"""The layering rules of docs/architecture.md, checked on every source file.

Each folder may include only the folders below it (the link graph points
inward), and the engine core (common/, kernels/, scheduler/, engine/) never
includes JSON, HTTP, gRPC, generated proto or command-line headers. Tests
(`*_test.cc`, `*_testutil.h`) may reach further: they are not in the link graph.
"""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

ENGINE_PARTS = ["engine/gguf", "engine/jinja", "engine/tokenizer", "engine/sampling", "engine/eviction",
                "engine/model", "engine/kv", "engine/structured"]
CORE = ["common", "kernels", "kernels/cpu", "kernels/cuda", "scheduler", "engine"] + ENGINE_PARTS

# folder -> the project folders its non-test sources may include (besides itself).
ALLOWED = {
    "common": [],
    "kernels": ["common"],
    "kernels/cpu": ["common", "kernels"],
    "kernels/cuda": ["common", "kernels", "kernels/cpu"],
    "scheduler": ["common"],
    "engine/gguf": ["common", "kernels", "kernels/cpu"],
    "engine/jinja": ["common"],
    "engine/tokenizer": ["common", "kernels", "engine/gguf", "engine/jinja"],
    "engine/sampling": ["common", "kernels", "engine/gguf", "engine/tokenizer", "engine/jinja"],
    "engine/eviction": ["common", "kernels", "kernels/cpu"],
    "engine/structured": ["common", "kernels", "engine/gguf", "engine/tokenizer", "engine/jinja"],
    "engine/model": ["common", "kernels", "kernels/cpu", "engine/gguf", "engine/tokenizer", "engine/jinja"],
    "engine/kv": ["common", "kernels", "kernels/cpu", "scheduler", "engine/eviction", "engine/model",
                  "engine/gguf", "engine/tokenizer", "engine/jinja"],
    "engine": ["common", "kernels", "kernels/cpu", "scheduler"] + ENGINE_PARTS,
    "eval": ["common", "kernels", "kernels/cpu", "scheduler", "engine"] + ENGINE_PARTS,
    "bench": ["common", "kernels", "engine/gguf", "engine/tokenizer", "engine/jinja", "proto"],
    "server": ["common", "kernels", "kernels/cpu", "scheduler", "engine", "proto"] + ENGINE_PARTS,
}
# Transport, JSON, CLI and generated-proto headers: never in the core.
FORBIDDEN_IN_CORE = re.compile(
    r'^(nlohmann/|boost/|grpcpp/|grpc\+\+/|grpc/|google/protobuf/|CLI/|prometheus/|restkv/v1/|.*\.pb\.h$)')
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
PROJECT_TOP = {"common", "kernels", "scheduler", "engine", "eval", "bench", "server", "cli", "tools",
               "proto", "tests"}


def folder_of(include):
    """The project folder an include path names ('engine/kv', 'kernels/cpu', 'server', ...)."""
    parts = include.split("/")
    if parts[0] not in PROJECT_TOP or len(parts) < 2:
        return None
    if parts[0] in ("engine", "kernels") and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def violations(folder, path, text):
    """Rule breaks in one source file of `folder` (path is for the messages)."""
    out = []
    test_file = re.search(r'(_test|_testutil|_fuzzer)\.(cc|h)$', path.name) is not None
    for inc in INCLUDE.findall(text):
        if folder in CORE and FORBIDDEN_IN_CORE.match(inc):
            out.append(f"{path}: the engine core includes transport/JSON/CLI header <{inc}>")
            continue
        if test_file or folder not in ALLOWED:
            continue
        dep = folder_of(inc)
        if dep is None or dep == folder:
            continue
        if dep not in ALLOWED[folder]:
            out.append(f"{path}: {folder}/ may not include {inc} ({dep}/ is not below it)")
    return out


def source_files():
    for path in sorted(ROOT.rglob("*")):
        if path.suffix not in (".h", ".cc", ".cu", ".cuh") or not path.is_file():
            continue
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("build", ".venv") or rel.parts[0].startswith(("build", ".")):
            continue
        yield rel, folder_of(str(rel)) or rel.parts[0]


def test_every_source_file_respects_the_layering():
    problems = []
    for rel, folder in source_files():
        problems += violations(folder, rel, (ROOT / rel).read_text(errors="replace"))
    assert not problems, "\n".join(problems)


def test_no_cli11_outside_the_command_line_and_tool_mains():
    users = [str(rel) for rel, folder in source_files()
             if 'CLI/CLI.hpp' in (ROOT / rel).read_text(errors="replace")
             and folder != "cli" and not str(rel).endswith("_main.cc")]
    assert not users, f"CLI11 outside cli/: {users}"


@pytest.mark.parametrize("folder,include,bad", [
    ("engine/kv", "nlohmann/json.hpp", True),
    ("scheduler", "grpcpp/grpcpp.h", True),
    ("kernels/cpu", "proto/restkv.pb.h", True),
    ("engine/model", "engine/kv/sequence_kv.h", True),   # model is below kv
    ("engine/eviction", "engine/model/model.h", True),
    ("server", "cli/cli.h", True),
    ("bench", "server/metrics.h", True),
    ("engine/kv", "engine/model/model_config.h", False),
    ("engine", "engine/kv/block_pool.h", False),
    ("server", "engine/engine.h", False),
])
def test_the_checker_flags_planted_includes(folder, include, bad):
    found = violations(folder, pathlib.Path(f"{folder}/planted.cc"), f'#include "{include}"\n')
    assert bool(found) == bad, found

#!/usr/bin/env python3
"""Regenerates the chat-template conformance fixtures.

Templates: a selection of the real chat templates in llama.cpp's source tree
(models/templates/*.jinja), read from the llama-cpp-python sdist:

    pip download --no-binary :all: --no-deps llama-cpp-python -d DIR
    python3 tests/chat_templates/gen_fixtures.py --sdist DIR/llama_cpp_python-*.tar.gz

The selected templates are copied to tests/chat_templates/templates/ (MIT,
see templates/LICENSE-llama.cpp; each file is the model vendor's template as
llama.cpp carries it). Without --sdist the committed copies are used, so the
expected strings can be regenerated offline.

Expected strings: every template renders every conversation below with
Python's jinja2, configured the way transformers' apply_chat_template does it
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, a
tojson filter that is json.dumps(ensure_ascii=False), raise_exception, a
strftime_now helper, and messages/tools/add_generation_prompt plus the special
tokens as variables). A pair that raises is recorded as {"error": ...}; the
C++ renderer must fail on it too. Output: tests/chat_templates/fixtures.json,
read by engine/tokenizer/chat_template_conformance_test.cc.
"""
import argparse
import datetime
import glob
import json
import os
import shutil
import tarfile

import jinja2
import jinja2.ext
import jinja2.sandbox

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE_DIR = os.path.join(HERE, "templates")

# The fixed clock strftime_now reads (the C++ test passes the same instant).
NOW = datetime.datetime(2024, 9, 15, 12, 0, 0, tzinfo=datetime.timezone.utc)

# template file stem -> (bos_token, eos_token)
TEMPLATES = {
    "meta-llama-Llama-3.1-8B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.2-3B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.3-70B-Instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "Qwen-Qwen2.5-7B-Instruct": ("", "<|im_end|>"),
    "Qwen-QwQ-32B": ("", "<|im_end|>"),
    "Qwen-Qwen3-0.6B": ("", "<|im_end|>"),
    "mistralai-Mistral-Nemo-Instruct-2407": ("<s>", "</s>"),
    "Mistral-Small-3.2-24B-Instruct-2506": ("<s>", "</s>"),
    "unsloth-mistral-Devstral-Small-2507": ("<s>", "</s>"),
    "google-gemma-2-2b-it": ("<bos>", "<eos>"),
    "microsoft-Phi-3.5-mini-instruct": ("<s>", "<|endoftext|>"),
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-ai-DeepSeek-V3.1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "HuggingFaceTB-SmolLM3-3B": ("", "<|im_end|>"),
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use": ("<|begin_of_text|>", "<|im_end|>"),
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": ("<|begin_of_text|>", "<|im_end|>"),
    "fireworks-ai-llama-3-firefunction-v2": ("<|begin_of_text|>", "<|eot_id|>"),
    "meetkai-functionary-medium-v3.1": ("<|begin_of_text|>", "<|eot_id|>"),
    "meetkai-functionary-medium-v3.2": ("<|begin_of_text|>", "<|eot_id|>"),
    "ibm-granite-granite-3.3-2B-Instruct": ("<|end_of_text|>", "<|end_of_text|>"),
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "openai-gpt-oss-120b": ("<|startoftext|>", "<|return|>"),
    "moonshotai-Kimi-K2": ("[BOS]", "[EOS]"),
    "llama-cpp-deepseek-r1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current local time in a timezone.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}
TOOL_CALL = {
    "id": "abc123xyz",
    "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
}

CONVERSATIONS = {
    "user_only": {"messages": [{"role": "user", "content": "Hello!"}]},
    "system_user": {
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "What is 2+2?"},
        ]
    },
    "multi_turn": {
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
        ]
    },
    "ends_with_assistant": {
        "messages": [
            {"role": "user", "content": "Say yes."},
            {"role": "assistant", "content": "Yes."},
        ]
    },
    "whitespace_unicode": {
        "messages": [
            {"role": "user", "content": "  padded text \n\n with  spaces  "},
            {"role": "assistant", "content": " héllo — 日本語 ✓ "},
            {"role": "user", "content": "quotes \"double\" and 'single' and \\backslash\\\n\ttab"},
        ]
    },
    "tools_offered": {
        "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
        "tools": [WEATHER_TOOL, TIME_TOOL],
    },
    "tools_with_system": {
        "messages": [
            {"role": "system", "content": "Use tools when needed."},
            {"role": "user", "content": "What's the weather in Paris?"},
        ],
        "tools": [WEATHER_TOOL],
    },
    "tool_round_trip": {
        "messages": [
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
            {"role": "tool", "tool_call_id": "abc123xyz", "name": "get_weather",
             "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
        ],
        "tools": [WEATHER_TOOL],
    },
    "tool_round_trip_answered": {
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
            {"role": "tool", "tool_call_id": "abc123xyz", "name": "get_weather",
             "content": "21 C, clear"},
            {"role": "assistant", "content": "It is 21 °C and clear in Paris."},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": [WEATHER_TOOL],
    },
    "consecutive_users": {
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
        ]
    },
    "empty_conversation": {"messages": []},
}


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    return NOW.strftime(fmt)


def make_env():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def copy_templates(sdist):
    os.makedirs(TEMPLATE_DIR, exist_ok=True)
    with tarfile.open(sdist) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for stem in TEMPLATES:
            name = next(n for n in members if n.endswith(f"vendor/llama.cpp/models/templates/{stem}.jinja"))
            with tar.extractfile(members[name]) as src, open(os.path.join(TEMPLATE_DIR, stem + ".jinja"), "wb") as dst:
                shutil.copyfileobj(src, dst)
        lic = next(n for n in members if n.endswith("vendor/llama.cpp/LICENSE"))
        with tar.extractfile(members[lic]) as src, open(os.path.join(TEMPLATE_DIR, "LICENSE-llama.cpp"), "wb") as dst:
            dst.write(b"The .jinja files in this folder are copied from llama.cpp's models/templates/\n"
                      b"(as vendored in the llama-cpp-python sdist); llama.cpp's licence follows.\n\n")
            shutil.copyfileobj(src, dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sdist", help="llama-cpp-python sdist (.tar.gz) to copy the templates from")
    args = ap.parse_args()
    if args.sdist:
        copy_templates(args.sdist)
    env = make_env()
    cases = []
    for stem, (bos, eos) in TEMPLATES.items():
        with open(os.path.join(TEMPLATE_DIR, stem + ".jinja"), encoding="utf-8") as f:
            source = f.read()
        tmpl = env.from_string(source)
        for conv_name, conv in CONVERSATIONS.items():
            for gen in (True, False):
                context = {
                    "messages": conv["messages"],
                    "tools": conv.get("tools"),
                    "add_generation_prompt": gen,
                    "bos_token": bos,
                    "eos_token": eos,
                }
                case = {"template": stem, "conversation": conv_name, "add_generation_prompt": gen,
                        "bos_token": bos, "eos_token": eos}
                try:
                    case["expected"] = tmpl.render(**context)
                except Exception as e:  # noqa: BLE001 - any failure must be a failure in C++ too
                    case["error"] = f"{type(e).__name__}: {e}"
                cases.append(case)
    out = {
        "now_unix": int(NOW.timestamp()),
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    with open(os.path.join(HERE, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum("error" in c for c in cases)
    print(f"{len(cases)} cases ({errors} raise) over {len(TEMPLATES)} templates")


if __name__ == "__main__":
    main()

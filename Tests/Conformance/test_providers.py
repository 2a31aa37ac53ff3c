"""Jury's requests and its reading of answers, checked against the providers' official SDKs.

For each provider and each kind of judge parameters, `jury prompt --requests` prints the body
Jury would send; it is validated against the SDK's request type (types checked, and every key,
at any depth, known to the SDK). Then responses built from the SDKs' own response models, with
every usage field set, are served over HTTP to `jury prompt --send`, and the tokens and cost
Jury reads back are compared with what the provider bills for that usage.

Run by deploy/local/test.sh with JURY_BINARY set, in a virtualenv holding requirements.txt.
"""

import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import anthropic.types
import openai.types
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from google.genai import types as gemini
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import ConfigDict, TypeAdapter
from typing_extensions import is_typeddict

JURY = os.environ.get("JURY_BINARY", "jury")
LABELS = ["valid", "needs_more_context", "ambiguous"]
EXAMPLE = json.dumps({"id": "c-1", "request": "Customers from Paris"})
KEY = "sk-conformance-0042"
PRICE = {"input": 2.0, "output": 8.0, "cached": 0.5, "cache_write": 2.5}


def forbid_unknown_keys(package):
    """The SDKs' request types are TypedDicts, which accept unknown keys: make every one refuse them."""
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # an optional extra the SDK imports lazily
            continue
        for value in vars(module).values():
            if inspect.isclass(value) and is_typeddict(value) and value.__module__ == module.__name__:
                value.__pydantic_config__ = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


forbid_unknown_keys(openai.types)
forbid_unknown_keys(anthropic.types)
OPENAI_REQUEST = TypeAdapter(CompletionCreateParamsNonStreaming)
ANTHROPIC_REQUEST = TypeAdapter(MessageCreateParamsNonStreaming)
# The top-level fields of Gemini's GenerateContentRequest that the SDK writes (its config's
# fields that go beside generationConfig), each with the SDK model that describes it.
GEMINI_FIELDS = {
    "contents": gemini.Content,
    "systemInstruction": gemini.Content,
    "generationConfig": gemini.GenerationConfig,
    "safetySettings": gemini.SafetySetting,
    "tools": gemini.Tool,
    "toolConfig": gemini.ToolConfig,
    "cachedContent": str,
}

# Each provider with the kinds of parameters a curator sets: (name, judge YAML additions).
CASES = {
    "openai": [
        ("none", ""),
        ("reasoning", "parameters: { reasoning_effort: low, max_completion_tokens: 4000 }"),
        ("sampling", "parameters: { temperature: 0.2, top_p: 0.9, seed: 7, max_completion_tokens: 300 }"),
        ("service", "parameters: { service_tier: flex, store: false, verbosity: low, prompt_cache_key: jury-run }"),
    ],
    "anthropic": [
        ("none", ""),
        ("thinking", "parameters: { max_tokens: 16000, thinking: { type: enabled, budget_tokens: 8000 } }"),
        (
            "adaptive-effort",
            "parameters: { max_tokens: 8000, thinking: { type: adaptive }, output_config: { effort: low } }",
        ),
        ("service", "parameters: { service_tier: standard_only, metadata: { user_id: curation }, stop_sequences: [END] }"),
        ("pinned-tool", "anthropic_version: '2023-06-01', force_label: tool, parameters: { max_tokens: 600 }"),
    ],
    "gemini": [
        ("none", ""),
        (
            "thinking",
            "parameters: { generationConfig: { thinkingConfig: { thinkingBudget: 1024, includeThoughts: true },"
            " maxOutputTokens: 4000 } }",
        ),
        ("thinking-level", "parameters: { generationConfig: { thinkingConfig: { thinkingLevel: LOW } } }"),
        (
            "safety-sampling",
            "parameters: { safetySettings: [{ category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_ONLY_HIGH }],"
            " generationConfig: { seed: 3, temperature: 0.5 } }",
        ),
    ],
}


def run_config(provider, base_url):
    """A run with one judge per parameter set of the provider, each its own model."""
    base = base_url + ("/v1beta" if provider == "gemini" else "/v1")
    judges = []
    for name, extra in CASES[provider]:
        price = (
            f"price: {{ input_per_million: {PRICE['input']}, output_per_million: {PRICE['output']},"
            f" cached_input_per_million: {PRICE['cached']}"
            + (f", cache_write_per_million: {PRICE['cache_write']}" if provider == "anthropic" else "")
            + " }"
        )
        fields = [f"name: {name}", f"provider: {provider}", f"model: m-{name}", f'base_url: "{base}"',
                  "api_key_env: CONFORMANCE_KEY", price] + ([extra] if extra else [])
        judges.append("  - { " + ", ".join(fields) + " }")
    taxonomy = "\n".join(f"  - {{ label: {label}, description: the {label} case }}" for label in LABELS)
    return (
        f"name: conformance-{provider}\ntaxonomy:\n{taxonomy}\njudges:\n" + "\n".join(judges)
        + '\nprompt:\n  system: "Labels: {{#labels}}{{.}} {{/labels}}"\n  user: "Request: {{request}}"\n'
    )


def jury(config_text, *arguments, env=None):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        file.write(config_text)
    try:
        result = subprocess.run(
            [JURY, "prompt", "--config", file.name, *arguments, EXAMPLE],
            capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60,
        )
    finally:
        os.unlink(file.name)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, {line["judge"]: line for line in lines}


RESULTS = []  # rows of the table printed at the end (conftest.py)


# MARK: - Requests


def check_request(provider, request):
    body, headers = request["body"], request["headers"]
    if provider == "openai":
        OPENAI_REQUEST.validate_python(body, strict=True)
        assert headers["Authorization"] == "Bearer $CONFORMANCE_KEY"
    elif provider == "anthropic":
        ANTHROPIC_REQUEST.validate_python(body, strict=True)
        assert headers["x-api-key"] == "$CONFORMANCE_KEY"
    else:
        unknown = set(body) - set(GEMINI_FIELDS)
        assert not unknown, f"keys the SDK does not know: {unknown}"
        for key, value in body.items():
            model = GEMINI_FIELDS[key]
            for item in value if isinstance(value, list) else [value]:
                if model is not str:
                    model.model_validate(item, strict=False)
        assert request["url"].endswith(":generateContent")
    # Jury sends no sampling parameter the judge did not set.
    flat = json.dumps(body)
    return flat


@pytest.mark.parametrize("provider,case", [(p, name) for p in CASES for name, _ in CASES[p]])
def test_every_request_is_valid_for_the_sdk(provider, case):
    result, requests = jury(run_config(provider, "http://127.0.0.1:9"), "--requests")
    assert result.returncode == 0, result.stderr
    request = requests[case]
    flat = check_request(provider, request)
    extra = dict(CASES[provider])[case]
    for sampling in ["temperature", "top_p", "top_k", "topP", "topK"]:
        assert (sampling in flat) == (sampling in extra), f"{sampling} sent without being set"
    if provider == "anthropic":
        version = "2023-06-01" if "pinned" in case else anthropic._constants.ANTHROPIC_API_VERSION
        assert request["headers"]["anthropic-version"] == version
        forced = "tool_choice" if "tool" in case else "output_config"
        assert forced in request["body"]
    RESULTS.append((provider, case, "request", "valid"))


# MARK: - Responses


def openai_response(model):
    from openai.types.chat import ChatCompletion
    from openai.types.chat.chat_completion import Choice
    from openai.types.chat.chat_completion_message import ChatCompletionMessage
    from openai.types.completion_usage import CompletionTokensDetails, CompletionUsage, PromptTokensDetails

    usage = CompletionUsage(
        prompt_tokens=1200, completion_tokens=900, total_tokens=2100,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=1024, audio_tokens=0, cache_write_tokens=100),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=850, audio_tokens=0, accepted_prediction_tokens=0, rejected_prediction_tokens=0),
    )
    message = ChatCompletionMessage(
        role="assistant", content=json.dumps({"label": "ambiguous", "rationale": "Two readings."}), refusal=None)
    completion = ChatCompletion(
        id="chatcmpl-1", object="chat.completion", created=1796000000, model=model + "-2026-11-01",
        choices=[Choice(index=0, finish_reason="stop", message=message, logprobs=None)], usage=usage)
    billed_input = usage.prompt_tokens - 1024  # cache writes are billed as input
    cost = (billed_input * PRICE["input"] + 1024 * PRICE["cached"] + usage.completion_tokens * PRICE["output"]) / 1e6
    tokens = {"input": 1200, "cached": 1024, "cache_write": 100, "output": 900, "thinking": 850}
    return completion.model_dump(mode="json"), tokens, cost


def anthropic_response(model, by_tool):
    from anthropic.types import Message, TextBlock, ThinkingBlock, ToolUseBlock, Usage
    from anthropic.types.output_tokens_details import OutputTokensDetails
    from anthropic.types.redacted_thinking_block import RedactedThinkingBlock

    usage = Usage(
        input_tokens=300, output_tokens=1500, cache_read_input_tokens=2000, cache_creation_input_tokens=400,
        output_tokens_details=OutputTokensDetails(thinking_tokens=1400),
    )
    answer = {"label": "needs_more_context", "rationale": "A term is undefined."}
    blocks = [
        ThinkingBlock(type="thinking", thinking="Weighing the labels.", signature="sig"),
        RedactedThinkingBlock(type="redacted_thinking", data="opaque"),
        TextBlock(type="text", text="Here is my label."),
    ]
    if by_tool:
        blocks.append(ToolUseBlock(type="tool_use", id="toolu_1", name="record_label", input=answer))
    else:
        blocks[-1] = TextBlock(type="text", text=json.dumps(answer))
    message = Message(
        id="msg_1", type="message", role="assistant", model=model, content=blocks,
        stop_reason="tool_use" if by_tool else "end_turn", stop_sequence=None, usage=usage,
    )
    cost = (300 * PRICE["input"] + 2000 * PRICE["cached"] + 400 * PRICE["cache_write"] + 1500 * PRICE["output"]) / 1e6
    tokens = {"input": 2700, "cached": 2000, "cache_write": 400, "output": 1500, "thinking": 1400}
    return message.model_dump(mode="json"), tokens, cost


def gemini_response(model):
    response = gemini.GenerateContentResponse(
        candidates=[
            gemini.Candidate(
                content=gemini.Content(role="model", parts=[
                    gemini.Part(text="Thinking about the merchant's words.", thought=True),
                    gemini.Part(text=json.dumps({"label": "valid", "rationale": "Plain segment."})),
                ]),
                finish_reason=gemini.FinishReason.STOP, index=0,
            )
        ],
        usage_metadata=gemini.GenerateContentResponseUsageMetadata(
            prompt_token_count=7000, candidates_token_count=40, thoughts_token_count=300,
            cached_content_token_count=5000, total_token_count=7340,
        ),
        model_version=model + "-001",
    )
    # Thoughts are billed as output, beside the candidates' tokens.
    cost = (2000 * PRICE["input"] + 5000 * PRICE["cached"] + (40 + 300) * PRICE["output"]) / 1e6
    tokens = {"input": 7000, "cached": 5000, "cache_write": 0, "output": 340, "thinking": 300}
    return response.model_dump(mode="json", by_alias=True, exclude_none=True), tokens, cost


class Provider(BaseHTTPRequestHandler):
    """Answers each call with the response built for its model; keeps what it was sent."""

    responses = {}
    received = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body.get("model") or self.path.split("/models/")[1].split(":")[0]
        Provider.received.append((self.path, dict(self.headers), body))
        payload = json.dumps(Provider.responses[model]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *arguments):
        pass


@pytest.fixture(scope="module")
def provider_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("provider", list(CASES))
def test_answers_are_read_with_the_tokens_and_cost_the_provider_bills(provider, provider_server):
    expected = {}
    for name, extra in CASES[provider]:
        model = f"m-{name}"
        if provider == "openai":
            Provider.responses[model], tokens, cost = openai_response(model)
        elif provider == "anthropic":
            Provider.responses[model], tokens, cost = anthropic_response(model, by_tool="tool" in extra)
        else:
            Provider.responses[model], tokens, cost = gemini_response(model)
        expected[name] = (tokens, cost)
    Provider.received.clear()
    result, answers = jury(run_config(provider, provider_server), "--send", env={"CONFORMANCE_KEY": KEY})
    assert result.returncode == 0, result.stdout + result.stderr
    for name, (tokens, cost) in expected.items():
        answer = answers[name]
        assert answer["tokens"] == tokens, f"{provider} {name}: {answer}"
        assert abs(answer["cost_usd"] - cost) < 1e-12, f"{provider} {name}: {answer['cost_usd']} != {cost}"
        summary = (
            f"in {tokens['input']} ({tokens['cached']} cached, {tokens['cache_write']} written), "
            f"out {tokens['output']} ({tokens['thinking']} thinking), ${cost:.6f}: as billed"
        )
        RESULTS.append((provider, name, "answer", summary))
    # What went over the wire is what --requests printed, with the key in its header.
    for path, headers, body in Provider.received:
        check_request(provider, {"body": body, "headers": {**headers, "x-api-key": "$CONFORMANCE_KEY",
                                                             "Authorization": "Bearer $CONFORMANCE_KEY"},
                                 "url": path})
        assert KEY in (headers.get("Authorization", "") + headers.get("x-api-key", "")
                       + headers.get("x-goog-api-key", ""))

"""Batch mode, checked against the providers' official SDKs.

What a batch-mode judge puts in a batch (`jury prompt --requests` shows it as batch_request) is
validated against the SDK's types: OpenAI's input line must carry a body the Chat Completions
request type takes, Anthropic's request item must be the SDK's batch Request. Then the mock
judge's batch APIs, which Jury's own tests run against, are driven by the SDK clients
themselves: every batch object, list and result they return must parse as the SDK's models.
Gemini's input line carries a request whose fields the SDK's types take, and the mock's Batch
Mode (resumable upload, batch, responses file) is driven by google-genai's client.

Run by deploy/local/test.sh with JURY_BINARY set, in a virtualenv holding requirements.txt.
"""

import json
import socket
import subprocess
import tempfile
import time

import io

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gemini
from anthropic.types import Message
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from anthropic.types.messages.batch_create_params import Request as AnthropicBatchRequest
from openai.types import Batch
from openai.types.chat import ChatCompletion
from pydantic import TypeAdapter

from test_providers import EXAMPLE, GEMINI_FIELDS, JURY, KEY, LABELS, OPENAI_REQUEST, RESULTS

ANTHROPIC_BATCH_REQUEST = TypeAdapter(AnthropicBatchRequest)


def batch_config(base_url):
    taxonomy = "\n".join(f"  - {{ label: {label}, description: the {label} case }}" for label in LABELS)
    judges = "\n".join(
        f'  - {{ name: {provider}, provider: {provider}, model: m, base_url: "{base_url}/{version}",'
        f" api_key_env: CONFORMANCE_KEY, mode: batch, batch: {{ max_requests: 100, gather_seconds: 1 }} }}"
        for provider, version in [("openai", "v1"), ("anthropic", "v1"), ("gemini", "v1beta")]
    )
    return (
        f"name: conformance-batches\ntaxonomy:\n{taxonomy}\njudges:\n{judges}\n"
        'prompt:\n  system: "Labels: {{#labels}}{{.}} {{/labels}}"\n  user: "Request: {{request}}"\n'
    )


def batch_requests(base_url):
    """Each judge's batch_request, as `jury prompt --requests` prints it."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        file.write(batch_config(base_url))
    result = subprocess.run(
        [JURY, "prompt", "--config", file.name, "--requests", EXAMPLE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {line["judge"]: line["batch_request"] for line in lines}


def test_every_batch_request_is_valid_for_the_sdk():
    requests = batch_requests("http://127.0.0.1:9")
    line = requests["openai"]
    assert set(line) == {"custom_id", "method", "url", "body"}
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    OPENAI_REQUEST.validate_python(line["body"], strict=True)
    ANTHROPIC_BATCH_REQUEST.validate_python(requests["anthropic"], strict=True)
    line = requests["gemini"]
    assert set(line) == {"key", "request"}
    assert not set(line["request"]) - set(GEMINI_FIELDS)
    for key, value in line["request"].items():
        for item in value if isinstance(value, list) else [value]:
            GEMINI_FIELDS[key].model_validate(item, strict=False)
    requests["gemini"] = {"custom_id": line["key"]}
    for provider in requests:
        # Anthropic's rule for custom ids, the stricter of the two.
        custom_id = requests[provider]["custom_id"]
        assert 1 <= len(custom_id) <= 64 and all(c.isalnum() or c in "_-" for c in custom_id)
        RESULTS.append((provider, "batch", "request", "valid"))


@pytest.fixture(scope="module")
def mock_judge():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        file.write(
            f"judges:\n  - {{ model: m, seed: 1, accuracy: 0.9, api_key: {KEY} }}\n"
            "batches: { complete_seconds: 0.3 }\n"
        )
    process = subprocess.Popen(
        [JURY, "mock-judge", "--port", str(port), "--config", file.name],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=10)


def with_ids(item, count):
    return [{**item, "custom_id": f"job-{n + 1}-claim-1"} for n in range(count)]


def wait_until(read, done):
    for _ in range(100):
        value = read()
        if done(value):
            return value
        time.sleep(0.1)
    raise AssertionError("the batch did not end")


def test_the_mocks_batch_api_speaks_openais_sdk(mock_judge):
    client = openai.OpenAI(base_url=mock_judge + "/v1", api_key=KEY)
    lines = with_ids(batch_requests(mock_judge)["openai"], 3)
    upload = client.files.create(
        file=("batch.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()), purpose="batch"
    )
    created = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"jury_batch": "token-1"},
    )
    Batch.model_validate(created.model_dump())

    def read():
        return Batch.model_validate(json.loads(client.batches.with_raw_response.retrieve(created.id).http_response.text))

    ended = wait_until(read, lambda batch: batch.status == "completed")
    assert ended.request_counts.total == 3 and ended.output_file_id
    output = client.files.content(ended.output_file_id).text.splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in output) == [line["custom_id"] for line in lines]
    for line in output:
        result = json.loads(line)
        assert result["error"] is None and result["response"]["status_code"] == 200
        completion = ChatCompletion.model_validate(result["response"]["body"])
        assert json.loads(completion.choices[0].message.content)["label"] in LABELS
    listed = client.batches.list(limit=10)
    assert any(batch.id == created.id and batch.metadata == {"jury_batch": "token-1"} for batch in listed.data)
    RESULTS.append(("openai", "batch", "mock", "Batch, output lines and list parse as the SDK's"))


def test_the_mocks_message_batches_speak_anthropics_sdk(mock_judge):
    client = anthropic.Anthropic(base_url=mock_judge, api_key=KEY)
    items = with_ids(batch_requests(mock_judge)["anthropic"], 3)
    created = client.messages.batches.create(requests=items)
    MessageBatch.model_validate(created.model_dump())

    def read():
        raw = client.messages.batches.with_raw_response.retrieve(created.id)
        return MessageBatch.model_validate(json.loads(raw.http_response.text))

    ended = wait_until(read, lambda batch: batch.processing_status == "ended")
    assert ended.request_counts.succeeded == 3 and ended.results_url
    results = list(client.messages.batches.results(created.id))
    assert sorted(result.custom_id for result in results) == [item["custom_id"] for item in items]
    for result in results:
        assert isinstance(result, MessageBatchIndividualResponse) and result.result.type == "succeeded"
        message = Message.model_validate(result.result.message.model_dump())
        assert json.loads(message.content[0].text)["label"] in LABELS
    assert any(batch.id == created.id for batch in client.messages.batches.list(limit=10).data)
    RESULTS.append(("anthropic", "batch", "mock", "MessageBatch, results and list parse as the SDK's"))


def test_the_mocks_batch_mode_speaks_geminis_sdk(mock_judge):
    client = genai.Client(api_key=KEY, http_options={"base_url": mock_judge, "api_version": "v1beta"})
    request = batch_requests(mock_judge)["gemini"]["request"]
    keys = [f"job-{n + 1}-claim-1" for n in range(3)]
    lines = "".join(json.dumps({"key": key, "request": request}) + "\n" for key in keys).encode()
    uploaded = client.files.upload(
        file=io.BytesIO(lines), config={"mime_type": "application/jsonl", "display_name": "jury-token-1"}
    )
    assert uploaded.name.startswith("files/") and uploaded.size_bytes == len(lines)
    created = client.batches.create(model="m", src=uploaded.name, config={"display_name": "jury-token-1"})
    assert created.name.startswith("batches/") and created.display_name == "jury-token-1"
    ended = wait_until(lambda: client.batches.get(name=created.name), lambda job: job.done)
    assert ended.state == gemini.JobState.JOB_STATE_SUCCEEDED and ended.dest.file_name
    output = client.files.download(file=ended.dest.file_name).decode().splitlines()
    assert sorted(json.loads(line)["key"] for line in output) == keys
    for line in output:
        response = gemini.GenerateContentResponse.model_validate(json.loads(line)["response"])
        assert json.loads(response.text)["label"] in LABELS
    assert any(job.name == created.name for job in client.batches.list(config={"page_size": 10}))
    RESULTS.append(("gemini", "batch", "mock", "upload, BatchJob, responses file and list parse as the SDK's"))

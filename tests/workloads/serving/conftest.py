"""A tiny BERT classifier exported like the trainer's models, and ways to serve it on 127.0.0.1."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn
from starlette.applications import Starlette

from modelplane.workloads.model_artifact import ModelManifest, save_model
from modelplane.workloads.serving.server.classifier import TextClassifier
from tests.tiny_model import SPECIAL_TOKENS, tiny_bert_config

LABELS = ["negative", "neutral", "positive"]
WORDS = [
    "the",
    "a",
    "movie",
    "film",
    "was",
    "is",
    "great",
    "good",
    "bad",
    "awful",
    "fine",
    "plot",
    "acting",
    "boring",
    "fun",
    "long",
    "short",
    "not",
    "very",
]
STARTUP_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised (seeded) 2-layer BERT classifier with its tokenizer and manifest."""
    from transformers import BertForSequenceClassification, BertTokenizer

    root = tmp_path_factory.mktemp("tiny-bert")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join([*SPECIAL_TOKENS, *WORDS]) + "\n")
    # `vocab`, not `vocab_file`: the fast tokenizer of transformers 5 ignores `vocab_file` and keeps only specials.
    tokenizer = BertTokenizer(vocab=str(vocab))
    torch.manual_seed(0)
    # A wide initialisation spreads the logits, so batching's tiny numeric noise never flips an argmax.
    config = tiny_bert_config(tokenizer.vocab_size, initializer_range=0.5)
    config.num_labels = len(LABELS)
    model = BertForSequenceClassification(config)
    return save_model(root / "export", model, tokenizer, ModelManifest(labels=LABELS, max_length=32, job_name="test"))


@pytest.fixture(scope="session")
def classifier(model_dir: Path) -> TextClassifier:
    return TextClassifier.load(model_dir, "cpu")


def sample_texts(count: int, seed: int = 0) -> list[str]:
    """Sentences of 1 to 12 known words (plus the odd unknown one), different lengths so batches pad."""
    generator = torch.Generator().manual_seed(seed)
    texts = []
    for _ in range(count):
        length = int(torch.randint(1, 13, (1,), generator=generator))
        picks = torch.randint(0, len(WORDS) + 1, (length,), generator=generator).tolist()
        texts.append(" ".join(WORDS[i] if i < len(WORDS) else "zebra" for i in picks))
    return texts


@contextmanager
def serve_in_thread(app: Starlette, **options: Any) -> Iterator[str]:
    """Run `app` under uvicorn (`options` for its Config) on a free 127.0.0.1 port in a thread; yields
    "127.0.0.1:PORT"."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()


class ServerProcess:
    """The server (`python -m modelplane.workloads.serving.server`) in a subprocess, its output collected by line."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect_output, daemon=True)
        self._reader.start()
        self.address = ""
        """host:port, once it listens."""

    def _collect_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            exited = self.process.poll() is not None
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if exited and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s}s; output:\n" + "".join(self.lines))

    def wait_until_ready(self, timeout_s: float) -> None:
        """Until /v2/health/ready answers 200: the model is loaded (the server listens before it is)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/health/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the server was not ready within {timeout_s}s; output:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_TIMEOUT_S)
        self._reader.join(STOP_TIMEOUT_S)


@contextmanager
def serve_in_subprocess(model_dir: Path, *options: str, wait_until_ready: bool = True) -> Iterator[ServerProcess]:
    """Start the server on a free 127.0.0.1 port and wait until it listens (and, by default, until its model is
    loaded and it is ready); kill it at the end if it still runs.

    It runs torch on one thread, as a one-CPU pod would: the test's load generator needs the other core.
    """
    command = [
        sys.executable,
        "-m",
        "modelplane.workloads.serving.server",
        "--model-uri",
        str(model_dir),
        "--port",
        "0",
        *options,
    ]
    server = ServerProcess(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        server.address = server.wait_for_line(r"Uvicorn running on http://([0-9.:]+)", STARTUP_TIMEOUT_S).group(1)
        if wait_until_ready:
            server.wait_until_ready(STARTUP_TIMEOUT_S)
        yield server
    finally:
        server.stop()

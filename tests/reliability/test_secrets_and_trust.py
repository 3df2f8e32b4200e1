"""Secrets and trust: the API key is in no file or log the tool writes; no code from a checkpoint, a pickle or a
YAML file ever runs unless asked for; data paths cannot leave their dataset folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.judge_server import JudgeServer
from tests.reliability.conftest import (
    CHILD_ENV,
    REPO_ROOT,
    assert_one_error_line,
    eval_argv,
    read_jsonl,
)
from tests.reliability.test_judge_faults import judge_reply, judged_argv

SECRET = "sk-reliability-Zq8v3XkLw0p9TTr4"


def _authorization(headers: dict[str, str]) -> str | None:
    return next((value for name, value in headers.items() if name.lower() == "authorization"), None)


def test_the_api_key_is_in_no_file_or_log(checkpoint, data_root, tmp_path):
    """A fresh `python -m tinyllava_bench eval` process with its home, temp and cache folders inside tmp_path;
    the judge echoes the key back in a reply the client rejects, so the key reaches an error message too."""
    home = tmp_path / "home"
    folders = {name: home / name for name in ("HOME", "TMPDIR", "XDG_CACHE_HOME", "HF_HOME")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    env = {
        **os.environ,
        **CHILD_ENV,
        **{name: str(folder) for name, folder in folders.items()},
        "OPENAI_API_KEY": SECRET,
        "TINYLLAVA_BENCH_JUDGE_RETRIES": "1",
        "TINYLLAVA_BENCH_JUDGE_BACKOFF": "0.01",
    }
    import pandas as pd

    poisoned = pd.read_parquet(data_root / "mmvet.parquet", columns=["question"])["question"][0]
    with JudgeServer() as server:

        def reply(body: dict, call: int):
            if poisoned in body["messages"][-1]["content"]:  # an endpoint that echoes the request's headers
                return {"id": "x", "echo": _authorization(server.headers[call])}
            return judge_reply(body, call)

        server.reply = reply
        argv = judged_argv(
            checkpoint, data_root, tmp_path / "run", server, "--judge-cache", str(tmp_path / "judge-cache")
        )
        done = subprocess.run(
            [sys.executable, "-m", "tinyllava_bench", *argv],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            timeout=300,
        )
        headers = list(server.headers)
    assert done.returncode == 3, done.stderr.decode()[-3000:]  # one judged sample failed (below)
    # the key was really sent, and really came back inside a failure the run recorded
    assert all(_authorization(h) == f"Bearer {SECRET}" for h in headers)
    failed = [s for s in read_jsonl(tmp_path / "run" / "samples_mmvet.jsonl") if s["error"]]
    assert len(failed) == 1 and "Bearer ***" in failed[0]["error"]

    assert SECRET.encode() not in done.stdout and SECRET.encode() not in done.stderr
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) > 10  # run folder, judge cache, ...
    leaks = [path for path in written if SECRET.encode() in path.read_bytes()]
    assert not leaks, leaks


def _copy(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    return target


def test_openelm_needs_an_explicit_trust_remote_code(fork_server, tiny_checkpoints, data_root, tmp_path):
    folder = _copy(tiny_checkpoints("llama", "siglip")["factory"], tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["model_type"] = "openelm"
    config["llm_model_name_or_path"] = "apple/OpenELM-270M-Instruct"
    (folder / "config.json").write_text(json.dumps(config))
    finished = fork_server.run(eval_argv(folder, data_root, tmp_path / "out", "pope"))
    assert finished.returncode == 1
    assert_one_error_line(
        finished.stderr, "'openelm' needs code from its hub repository", "trust_remote_code=True"
    )


def test_a_tokenizer_asking_for_remote_code_runs_none(fork_server, tiny_checkpoints, data_root, tmp_path):
    folder = _copy(tiny_checkpoints("llama", "siglip")["native"], tmp_path / "ckpt")
    marker = tmp_path / "remote-code-ran"
    (folder / "tokenization_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PreTrainedTokenizerFast\n\n\n"
        "class EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "EvilTokenizer"
    config["auto_map"] = {"AutoTokenizer": [None, "tokenization_evil.EvilTokenizer"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    finished = fork_server.run(eval_argv(folder, data_root, tmp_path / "out", "pope"))
    assert not marker.exists(), "the checkpoint's tokenizer code ran without trust_remote_code"
    assert finished.returncode == 1, finished.stderr[-3000:]
    assert_one_error_line(finished.stderr, "cannot load the tokenizer", "trust_remote_code=True")
    # refused outright: transformers' interactive "run the custom code? [y/N]" prompt never came up
    assert "Do you wish to run the custom code" not in finished.stdout + finished.stderr


def test_bin_weights_carrying_code_are_refused(fork_server, tiny_checkpoints, data_root, tmp_path):
    import torch

    folder = _copy(tiny_checkpoints("llama", "siglip")["factory_split"], tmp_path / "ckpt")
    marker = tmp_path / "pickle-code-ran"
    weights = torch.load(folder / "connector" / "pytorch_model.bin", weights_only=True)

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({**weights, "payload": Payload()}, folder / "connector" / "pytorch_model.bin")
    finished = fork_server.run(eval_argv(folder, data_root, tmp_path / "out", "pope"))
    assert not marker.exists(), "unpickling the weights ran code"
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "connector/pytorch_model.bin: cannot read weights")


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:os.system", "!!python/object/apply:builtins.open", "!!python/name:os.system"],
)
def test_yaml_with_python_tags_is_refused(fork_server, checkpoint, data_root, tmp_path, tag):
    marker = tmp_path / "yaml-code-ran"
    folder = _copy(REPO_ROOT / "tasks", tmp_path / "tasks")
    argument = f'["touch {marker}"]' if tag.endswith("system") and "apply" in tag else f'["{marker}", "w"]'
    value = f"{tag} {argument}" if "apply" in tag else f"{tag} ''"
    text = (folder / "pope.yaml").read_text().replace("notes: >-", f"extra_note: {value}\nnotes: >-")
    (folder / "pope.yaml").write_text(text)
    finished = fork_server.run(
        eval_argv(checkpoint, data_root, tmp_path / "out", "pope"),
        env={"TINYLLAVA_BENCH_TASKS_DIR": str(folder)},
    )
    assert not marker.exists()
    assert finished.returncode == 2
    assert_one_error_line(finished.stderr, "pope.yaml is not valid YAML")


def test_task_options_with_python_tags_are_refused(fork_server, checkpoint, data_root, tmp_path):
    marker = tmp_path / "option-code-ran"
    for option in (
        f'notes=!!python/object/apply:os.system ["touch {marker}"]',
        "generation.max_new_tokens=[",
    ):
        argv = eval_argv(checkpoint, data_root, tmp_path / "out", "pope")
        argv[argv.index("--task-options") + 1] = option
        finished = fork_server.run(argv)
        assert not marker.exists()
        assert finished.returncode == 2, finished.stderr[-3000:]
        assert_one_error_line(finished.stderr, "--task-options")


def test_judge_url_credentials_are_in_no_file_or_output(fork_server, checkpoint, data_root, tmp_path):
    """A judge URL with user:password and an `api-key=` query: the client puts the query in the request path,
    the server's 404 echoes that path, and the failure lands in samples files and the console, masked."""
    password, query_key = "pw-Hq72LmZ0", "qk-Zt55Rw81b"
    run = tmp_path / "run"
    with JudgeServer(reply=judge_reply) as server:
        url = server.base_url.replace("http://", f"http://alice:{password}@") + f"?api-key={query_key}"
        argv = eval_argv(
            checkpoint,
            data_root,
            run,
            "mmvet,llava_wild",
            "--judge-model",
            "judge-test",
            "--judge-base-url",
            url,
        )
        finished = fork_server.run(
            argv, env={"OPENAI_API_KEY": SECRET, "TINYLLAVA_BENCH_JUDGE_BACKOFF": "0.01"}
        )
    assert finished.returncode in (0, 3), finished.stderr[-3000:]  # 3: the exit status of counted failures
    failed = [s for task in ("mmvet", "llava_wild") for s in read_jsonl(run / f"samples_{task}.jsonl")]
    assert failed and all("HTTP 404" in s["error"] and "api-key=***" in s["error"] for s in failed)
    outputs = [finished.stdout, finished.stderr] + [
        path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file()
    ]
    leaks = [text[:200] for text in outputs if password in text or query_key in text or SECRET in text]
    assert not leaks, leaks
    results = json.loads((run / "results.json").read_text())
    assert results["tasks"]["mmvet"]["judge"]["base_url"].startswith("http://***@127.0.0.1:")

"""A warm process that forks one `tinyllava-bench` run per request, so crash tests can SIGKILL many real runs
without paying torch's and transformers' import time (about 10 s on a busy machine) for each.

Run as `python -m tests.reliability.fork_server WARMUP_ARGV_JSON`; it runs the warm-up command in-process (which
imports everything a run needs), prints {"ready": rc}, then serves one JSON request per stdin line:
{"argv": [...], "stdout": path, "stderr": path, "fsize": bytes or null, "env": {name: value}} -> {"pid": child}
at once, and {"pid": child, "returncode": rc, "maxrss_kb": peak memory} when the child ends (a negative rc is the
signal that ended it).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import traceback


def _reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _child(request: dict, stdout_fd: int, stderr_fd: int) -> None:
    # Runs in the fork: fds 1 and 2 become the pipes the server drains, then the CLI runs as `python -m` would.
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.environ.update(request.get("env") or {})
    if (
        request.get("fsize") is not None
    ):  # a full disk: file writes past this size fail with EFBIG (pipes don't)
        resource.setrlimit(resource.RLIMIT_FSIZE, (request["fsize"], request["fsize"]))
    from tinyllava_bench.cli import main

    code = 1
    try:
        code = main(request["argv"])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _drain(fd: int, path: str | None) -> threading.Thread:
    def copy() -> None:
        with os.fdopen(fd, "rb") as source, open(path or os.devnull, "wb") as target:
            for block in iter(lambda: source.read1(1 << 16), b""):
                target.write(block)

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def serve(warmup_argv: list[str]) -> None:
    import openai  # noqa: F401 - the judge client's import, paid once here rather than in every judged run
    import torch

    # one intra-op thread: no thread pool exists at fork time, so the children start clean
    torch.set_num_threads(1)
    from tinyllava_bench.cli import main

    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # the warm-up's table must not mix with the protocol lines
    try:
        rc = main(warmup_argv)
    finally:
        sys.stdout = real_stdout
    _reply({"ready": rc})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pipes = [os.pipe(), os.pipe()]  # stdout, stderr
        pid = os.fork()
        if pid == 0:
            for read_end, _ in pipes:
                os.close(read_end)
            _child(request, pipes[0][1], pipes[1][1])
        for _, write_end in pipes:
            os.close(write_end)
        drains = [_drain(pipes[0][0], request.get("stdout")), _drain(pipes[1][0], request.get("stderr"))]
        _reply({"pid": pid})
        _, status, usage = os.wait4(pid, 0)
        for drain in drains:  # no thread may be running at the next fork
            drain.join()
        _reply({"pid": pid, "returncode": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss})


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))

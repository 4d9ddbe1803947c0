"""A fork server for the tests' `cairn serve` processes (tests/helpers.py's
ServerProcess).

The suite starts ~200 servers. Each spent ~0.8 s of CPU starting, ~0.5 s of it
importing the same libraries (pyarrow and numpy, DuckDB, sqlglot, aiohttp, ...):
on a 2-core machine, time every test that starts a server waited for. So each
pytest worker keeps one process that has imported those libraries and nothing of
the project, and forks it for each server: the child then does what
`python -m server.cli serve ...` does from there on (its environment, working
directory, stdout and stderr, session, `sys.path[0]`, `sys.argv`), and runs the
module as `__main__`, exiting as that would. The project's own modules are
imported in the child, after its environment is set (some read it at import:
CAIRN_FAULTS). What a test gets back behaves as `subprocess.Popen` for what
the tests use of it: pid, poll, wait (TimeoutExpired), send_signal, terminate,
kill, returncode, stdout, stderr.

The `cairn` command itself (its entry point, a fresh interpreter) is still run as
a user runs it where that is what a test is about (tests/e2e/test_serve.py sets
CAIRN_TEST_FORK=0), and everywhere with CAIRN_TEST_FORK=0.

Run as a script, this file is the fork server: `python forkserver.py FD`, FD a
SOCK_SEQPACKET socket to its worker. It answers `{"ready": pid}` once its imports
are done, then for each request (JSON, the child's stdout and stderr passed as
descriptors) forks, and answers `{"id": n, "pid": pid}`; each child that ends is
reaped and reported as `{"exit": pid, "code": returncode}`. It ends when the
worker closes its end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

# The libraries the server imports (python -X importtime -m server.cli): about
# 0.5 s of the 0.73 s of its imports. Nothing of the project's.
PRELOAD = ("numpy", "pyarrow", "pyarrow.parquet", "pyarrow.fs", "pyarrow.compute", "duckdb",
           "sqlglot", "sqlglot.expressions", "lark", "aiohttp", "aiohttp.web", "rocksdict",
           "msgspec", "zstandard", "cryptography.hazmat.primitives.ciphers.aead", "yarl",
           "multidict", "regex", "prometheus_client")
MAX_MESSAGE = 1 << 20


# --- the worker's side ---------------------------------------------------------------------


class Forked:
    """A child of the fork server, as the tests use a subprocess.Popen."""

    def __init__(self, args: list[str], pid: int, stdout: Any, stderr: Any) -> None:
        self.args = args
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._ended = threading.Event()

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # ended: its exit is on its way
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Server:
    """This worker's fork server: the socket to it and the thread reading its answers."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                      str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        theirs.close()
        self.sock = ours
        first = json.loads(ours.recv(MAX_MESSAGE) or b"{}")
        if "ready" not in first:
            raise RuntimeError("the tests' fork server did not start")
        self.guard = threading.Lock()
        self.next_id = 0
        self.started: dict[int, Any] = {}  # request id -> pid (or an error), once answered
        self.children: dict[int, Forked] = {}
        self.early: dict[int, int] = {}  # exits reported before their child was registered
        self.answered = threading.Condition(self.guard)
        threading.Thread(target=self._read, name="forkserver-reader", daemon=True).start()

    def _read(self) -> None:
        while True:
            data = self.sock.recv(MAX_MESSAGE)
            if not data:
                return
            msg = json.loads(data)
            with self.guard:
                if "exit" in msg:
                    child = self.children.pop(msg["exit"], None)
                    if child is None:
                        self.early[msg["exit"]] = msg["code"]
                    else:
                        child._exited(msg["code"])
                else:
                    self.started[msg["id"]] = msg.get("pid", msg.get("error"))
                    self.answered.notify_all()

    def spawn(self, args: list[str], cwd: str, env: dict[str, str], session: bool,
              stderr: int | None = None) -> Forked:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe() if stderr is None else (-1, os.dup(stderr))
        try:
            with self.guard:
                self.next_id += 1
                rid = self.next_id
                request = {"id": rid, "module": args[2], "argv": args[3:], "cwd": cwd,
                           "env": env, "session": session}
                socket.send_fds(self.sock, [json.dumps(request).encode()], [out_w, err_w])
                while rid not in self.started:
                    if not self.answered.wait(60):
                        raise RuntimeError("the tests' fork server did not answer")
                pid = self.started.pop(rid)
                if not isinstance(pid, int):
                    raise RuntimeError(f"the tests' fork server could not fork: {pid}")
                child = Forked(args, pid, open(out_r, encoding="utf-8"),  # noqa: SIM115
                               None if err_r < 0 else open(err_r, encoding="utf-8"))  # noqa: SIM115
                out_r = err_r = -1
                if pid in self.early:
                    child._exited(self.early.pop(pid))
                else:
                    self.children[pid] = child
                return child
        finally:
            for fd in (out_w, err_w, out_r, err_r):
                if fd >= 0:
                    os.close(fd)


_server: _Server | None = None
_server_guard = threading.Lock()


def usable(args: list[str]) -> bool:
    """Whether `args` (sys.executable, "-m", module, ...) may be forked here."""
    return (os.environ.get("CAIRN_TEST_FORK", "1") != "0" and sys.platform.startswith("linux")
            and len(args) >= 3 and args[0] == sys.executable and args[1] == "-m")


def spawn(args: list[str], cwd: str, env: dict[str, str], session: bool = False,
          stderr: int | None = None) -> Forked:
    """`args` ([sys.executable, "-m", module, ...]) run as the fork server's child;
    its stderr to the file open as descriptor `stderr` if given (its `stderr`
    is then None), else to a pipe."""
    global _server
    with _server_guard:
        if _server is None or _server.proc.poll() is not None:
            _server = _Server()
        server = _server
    return server.spawn(args, cwd, env, session, stderr)


# --- the fork server's side ----------------------------------------------------------------


def _serve(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """Answer requests until the worker goes (None); in a child, its request."""
    import select

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                sock.send(json.dumps({"exit": pid,
                                      "code": os.waitstatus_to_exitcode(status)}).encode())
        if sock not in ready:
            continue
        data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 2)
        if not data:
            return None
        request = json.loads(data)
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"id": request["id"], "error": str(exc)}).encode())
            continue
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(wake_r)
            os.close(wake_w)
            sock.close()
            return request, fds
        for fd in fds:
            os.close(fd)
        children.add(pid)
        sock.send(json.dumps({"id": request["id"], "pid": pid}).encode())


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """In the child: what `python -m module argv...` would be, then run it."""
    import io
    import runpy
    import tempfile
    import time

    if request["session"]:
        os.setsid()
    os.chdir(request["cwd"])
    for fd, std in zip(fds, (1, 2), strict=True):
        os.dup2(fd, std)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    tempfile.tempdir = None
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True,
        write_through=unbuffered)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
        line_buffering=True, write_through=unbuffered)
    sys.path[0] = os.getcwd()  # as `python -m` puts it
    sys.argv = [request["module"], *request["argv"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


def _main() -> None:
    import gc
    import importlib

    sock = socket.socket(fileno=int(sys.argv[1]))
    gc.disable()
    for name in PRELOAD:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # the children share these pages until they write them
    gc.enable()
    job = _serve(sock)
    if job is not None:
        _become(*job)


if __name__ == "__main__":
    _main()

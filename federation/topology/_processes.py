"""Process per instance: each X-Road instance in its own OS process, the chaos proxy in
another, the coordinator (and any load generator) in the parent.

The child (``xfed serve-instance --plan PLAN --instance EE``) runs an
:class:`~federation.topology._runtime.InstanceNode` and speaks JSON lines with the parent:

* child -> parent on stdout: ``{"event": "addresses", ...}`` after phase 1,
  ``{"event": "connected"}`` after phase 2, ``{"event": "refreshed"}``;
* parent -> child on stdin: ``{"cmd": "connect", "addr_map": {...}}``, ``{"cmd": "refresh"}``.

Logs of each child go to ``<run_dir>/logs/<INST>.log``. Children ask the kernel to
SIGTERM them when the parent dies (``PR_SET_PDEATHSIG``), so a killed coordinator leaves
no orphans; the parent stops them with SIGTERM then SIGKILL. When a child exits on its
own, :func:`open_federation_processes` raises :class:`ChildCrashed` with its log tail.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from federation.topology._runtime import (
    Federation,
    InstanceAddresses,
    InstanceNode,
    RunPlan,
    StartupError,
    build_manifest,
    create_links,
    federate,
    plan_links,
    wait_ready,
    write_manifest,
    write_plan,
)

logger = logging.getLogger(__name__)

STOP_GRACE_S = 5.0


class ChildCrashed(StartupError):
    """Raised when an instance (or chaos) process exits while the federation runs."""

    def __init__(self, name: str, returncode: int | None, log_tail: str) -> None:
        self.name = name
        self.returncode = returncode
        self.log_tail = log_tail
        how = f"exited with code {returncode}"
        if returncode is not None and returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        super().__init__(f"process {name} {how}; last log lines:\n{log_tail}")


async def exit_with_parent(cancel: trio.CancelScope, *, period_s: float = 0.5) -> None:
    """Cancel ``cancel`` once this process's parent is gone (we were re-parented).

    ``PR_SET_PDEATHSIG`` is not used: Linux ties it to the *thread* that forked, and trio
    may spawn from a worker thread, so the child would die when that thread ends.
    """
    parent = os.getppid()
    while True:
        await trio.sleep(period_s)
        if os.getppid() != parent:
            break
    logger.warning("parent process %d is gone: stopping", parent)
    cancel.cancel()


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class _Child:
    """One child process with line-based JSON on stdin/stdout."""

    def __init__(self, name: str, proc: trio.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log
        self._buf = b""
        assert proc.stdout is not None
        self._stdout = proc.stdout

    async def read_line(self) -> str:
        while b"\n" not in self._buf:
            chunk = await self._stdout.receive_some(65536)
            if not chunk:
                await self.proc.wait()
                raise ChildCrashed(self.name, self.proc.returncode, log_tail(self.log))
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    async def read_event(self, event: str) -> dict[str, Any]:
        while True:
            line = await self.read_line()
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                logger.info("%s: %s", self.name, line)
                continue
            if isinstance(obj, dict) and obj.get("event") == event:
                return obj

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(json.dumps(obj).encode() + b"\n")

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        try:
            self.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        with trio.move_on_after(STOP_GRACE_S):
            await self.proc.wait()
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def _child_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "federation.cli", *args]


def _open_log(path: Path) -> Any:
    return path.open("ab")


async def _spawn(name: str, cmd: list[str], log: Path) -> _Child:
    logf = _open_log(log)
    try:
        proc = await trio.lowlevel.open_process(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=logf,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        logf.close()
    return _Child(name, proc, log)


@asynccontextmanager
async def open_federation_processes(
    plan: RunPlan, *, ready_timeout_s: float = 120.0
) -> AsyncIterator[Federation]:
    """A federation with one OS process per instance plus one for the chaos proxy.

    The yielded object's ``crashed`` scope is cancelled (and :class:`ChildCrashed` raised
    from the block) if a child dies.
    """
    write_plan(plan, time.time())
    logs = plan.run_dir / "logs"
    children: list[_Child] = []
    crashed: list[ChildCrashed] = []
    try:
        async with trio.open_nursery() as nursery:
            chaos = await _spawn(
                "chaos",
                _child_cmd("serve-chaos", "--seed", str(plan.seed)),
                logs / "chaos.log",
            )
            children.append(chaos)
            line = await chaos.read_line()
            m = re.search(r"(http://\S+)", line)
            if not m:
                raise StartupError(f"chaos process said {line!r}, expected its API address")
            chaos_url = m.group(1)
            nodes: dict[str, _Child] = {}
            for d in plan.instances:
                nodes[d.instance] = await _spawn(
                    d.instance,
                    _child_cmd(
                        "serve-instance",
                        "--plan",
                        str(plan.run_dir / "plan.json"),
                        "--instance",
                        d.instance,
                    ),
                    logs / f"{d.instance}.log",
                )
                children.append(nodes[d.instance])
            addresses: dict[str, InstanceAddresses] = {}
            with trio.fail_after(ready_timeout_s):
                for inst, child in nodes.items():
                    addresses[inst] = InstanceAddresses.from_json(
                        await child.read_event("addresses")
                    )
                links = plan_links(plan)
                addr_map = await create_links(chaos_url, links, addresses)
                for child in nodes.values():
                    await child.send({"cmd": "connect", "addr_map": addr_map})
                for child in nodes.values():
                    await child.read_event("connected")
                await federate(plan, addresses)
                for child in nodes.values():
                    await child.send({"cmd": "refresh"})
                for child in nodes.values():
                    await child.read_event("refreshed")
            await wait_ready(plan, timeout_s=ready_timeout_s)
            manifest = build_manifest(
                plan, addresses, links, chaos_url, mode="process-per-instance"
            )
            manifest["processes"] = {
                c.name: {"pid": c.proc.pid, "log": str(c.log)} for c in children
            }
            write_manifest(plan.run_dir, manifest)
            fed = Federation(plan, addresses, links, chaos_url, manifest)

            async def watch(child: _Child) -> None:
                await child.proc.wait()
                crashed.append(ChildCrashed(child.name, child.proc.returncode, log_tail(child.log)))
                nursery.cancel_scope.cancel()

            for child in children:
                nursery.start_soon(watch, child)
            try:
                yield fed
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for child in children:
                await child.stop()
    if crashed:
        raise crashed[0]


# --------------------------------------------------------------------------- the child


async def _serve_instance(plan: RunPlan, inst: str) -> None:
    node = InstanceNode(plan, inst)
    stdin = trio.lowlevel.FdStream(os.dup(0))
    out = trio.lowlevel.FdStream(os.dup(1))

    async def emit(obj: dict[str, Any]) -> None:
        await out.send_all(json.dumps(obj).encode() + b"\n")

    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(node.serve)
        await emit({"event": "addresses", **addresses.to_json()})
        buf = b""
        while True:
            chunk = await stdin.receive_some(65536)
            if not chunk:  # the parent closed our stdin: it is gone
                nursery.cancel_scope.cancel()
                return
            buf += chunk
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                cmd = json.loads(line)
                if cmd.get("cmd") == "connect":
                    node.connect(cmd["addr_map"])
                    await node.phase2_done.wait()
                    await emit({"event": "connected"})
                elif cmd.get("cmd") == "refresh":
                    await node.refresh()
                    await emit({"event": "refreshed"})


def serve_instance_main(plan_path: Path, inst: str) -> int:
    """``xfed serve-instance``: run one instance until SIGTERM/SIGINT, stdin closes, or the
    parent process dies."""
    plan = RunPlan.from_file(plan_path)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

                async def serve() -> None:
                    await _serve_instance(plan, inst)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(serve)
                nursery.start_soon(exit_with_parent, nursery.cancel_scope)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(main)
    return 0


def serve_chaos_main(seed: int | None) -> int:
    """``xfed serve-chaos``: the chaos proxy as a child of a coordinator (prints its API URL
    on the first line; stops on SIGTERM/SIGINT or when the parent dies)."""
    from chaos import ChaosServer

    async def main() -> None:
        server = ChaosServer(seed=seed)
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                address = await nursery.start(server.serve, "127.0.0.1", 0)
                print(address.url, flush=True)
                nursery.start_soon(exit_with_parent, nursery.cancel_scope)
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()

    trio.run(main)
    return 0

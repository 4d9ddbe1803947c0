"""A job's transfer gives way to the statements clients wait for
(server/throttle.py `Statements`): it waits between chunks while a request
runs, never longer than its bound, and not for the request that waits for the
job itself. No timing is asserted: each check waits on events, and only a
wrong implementation can make it see the other outcome."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from server.throttle import Statements
from tests.helpers import ok


def give_way_in_thread(statements: Statements, limit: float) -> tuple[threading.Thread,
                                                                      threading.Event]:
    returned = threading.Event()

    def run() -> None:
        statements.give_way(limit)
        returned.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, returned


def test_nothing_running_nothing_waits() -> None:
    statements = Statements()
    assert statements.running == 0
    assert statements.give_way(60) is False


def test_a_running_request_holds_the_transfer_until_it_ends() -> None:
    statements = Statements()
    statements.started()
    thread, returned = give_way_in_thread(statements, 60)
    try:
        # It is still waiting a while later (a give_way that did not wait
        # would have returned by now).
        assert not returned.wait(0.3)
        statements.ended()
        assert returned.wait(30)
    finally:
        if statements.running:
            statements.ended()
        thread.join(30)


def test_two_requests_the_transfer_waits_for_both() -> None:
    statements = Statements()
    statements.started()
    statements.started()
    thread, returned = give_way_in_thread(statements, 60)
    statements.ended()
    assert not returned.wait(0.3)
    statements.ended()
    assert returned.wait(30)
    thread.join(30)


def test_the_wait_is_bounded() -> None:
    statements = Statements()
    statements.started()  # never ends: many clients always have one running
    assert statements.give_way(0.01) is True


def test_a_request_waiting_for_its_job_is_not_counted() -> None:
    statements = Statements()

    async def request() -> tuple[int, int, int]:
        with statements.request():
            during = statements.running

            async def job_waiter() -> int:  # a task started by the request
                with statements.waiting_for_job():
                    return statements.running

            waiting = await asyncio.create_task(job_waiter())
            return during, waiting, statements.running

    assert asyncio.run(request()) == (1, 0, 1)
    assert statements.running == 0
    # Outside any request (a scheduled job), waiting for a job changes nothing.
    statements.started()
    with statements.waiting_for_job():
        assert statements.running == 1
    statements.ended()


async def test_an_http_statement_is_counted_while_it_runs(client: Any,
                                                          monkeypatch: Any) -> None:
    from server.app import CAIRN

    cairn = client.server.app[CAIRN]
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
    from storage import dml

    seen: list[int] = []
    write_values = dml.write_values

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(cairn.statements.running)
        return write_values(*args, **kwargs)

    # Both INSERT paths write here (a fast-path one-row INSERT has no tree).
    monkeypatch.setattr(dml, "write_values", counting)
    await ok(client, "INSERT INTO app.t VALUES (1, 'a')")
    assert seen == [1]
    assert cairn.statements.running == 0


async def test_a_backup_statement_does_not_wait_for_itself(aiohttp_client: Any,
                                                           cairn_config: Any,
                                                           monkeypatch: Any) -> None:
    """While BACKUP's own request waits for its job, the job's transfer sees no
    statement running (else every chunk would wait its full bound). In the
    server's process, that is: in a job process (the default) nothing gives
    way, as a SCHED_IDLE process waits for idle CPUs anyway."""
    from server.app import CAIRN, create_app
    from server.jobs import JobContext

    cairn_config.jobs.job_process = "off"
    client = await aiohttp_client(create_app(cairn_config))
    cairn = client.server.app[CAIRN]
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
    await ok(client, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')")
    seen: list[int] = []
    give_way = JobContext.give_way

    def counting(self: JobContext) -> None:
        seen.append(cairn.statements.running)
        give_way(self)

    monkeypatch.setattr(JobContext, "give_way", counting)
    (done,) = await ok(client, "BACKUP DATABASE app TO 'b1'")
    assert seen and set(seen) == {0}
    backup_id = done["rows"][0]["backup_id"]
    seen.clear()
    # VERIFY BACKUP reads every object back: it gives way too.
    await ok(client, f"VERIFY BACKUP '{backup_id}'")
    assert seen and set(seen) == {0}


def test_off_never_waits() -> None:
    statements = Statements(limit=0)  # [jobs] give_way_ms = 0
    statements.started()
    assert statements.give_way() is False


async def test_on_the_event_loop_the_transfer_goes_on_once_the_answer_is_out() -> None:
    """On the event loop "none running" is signalled by a callback (after the
    answer is written), not inside `ended`."""
    statements = Statements()
    statements.started()
    thread, returned = give_way_in_thread(statements, 60)
    loop = asyncio.get_running_loop()
    assert not await loop.run_in_executor(None, returned.wait, 0.3)
    statements.ended()
    assert await loop.run_in_executor(None, returned.wait, 30)
    thread.join(30)


def test_a_transfer_still_waits_just_after_a_request_ended() -> None:
    """A client in a loop sends its next statement within milliseconds: the
    transfer lingers that long after the last request ended."""
    statements = Statements()
    statements.linger = 60.0
    statements.started()
    statements.ended()
    assert statements.give_way(0.01) is True  # within the linger: it waited
    statements.linger = 0.0
    assert statements.give_way(0.01) is False  # quiet: nothing waits


async def test_a_transfer_waiting_between_two_requests_sleeps_until_signalled() -> None:
    """A transfer thread that starts waiting between two requests (in the
    linger) sleeps in `poll` until the event loop signals the end of the
    linger: no timer of its own (each wake-up of a lowered thread takes the
    GIL a statement on the event loop may be waiting for). Here the linger is
    long and then cut short: only the signal can wake the thread in time."""
    statements = Statements()
    statements.started()
    assert statements.give_way(0.001) is True  # a transfer waited lately
    statements.linger = 3600.0
    statements.ended()  # on the loop: the signal is due at the linger's end
    thread, returned = give_way_in_thread(statements, 3600)
    loop = asyncio.get_running_loop()
    assert not await loop.run_in_executor(None, returned.wait, 0.3)
    statements.linger = 0.0
    statements._signal_if_idle()  # what the loop's timer does at the linger's end
    assert await loop.run_in_executor(None, returned.wait, 30)
    thread.join(30)


def test_a_task_that_outlives_its_request_is_not_that_request() -> None:
    """An archiver's loop is started by START ARCHIVING's request and waits
    for its base backups long after that request ended: it must not take
    another request's place in the count (that request's end then found the
    count empty: IndexError, an HTTP 500)."""
    statements = Statements()

    async def main() -> tuple[int, int]:
        go, started = asyncio.Event(), asyncio.Event()
        seen: list[int] = []

        async def loop() -> None:  # started inside the first request
            started.set()
            await go.wait()
            with statements.waiting_for_job():
                seen.append(statements.running)

        with statements.request():
            task = asyncio.create_task(loop())
            await started.wait()
        with statements.request():  # another client's request, running
            go.set()
            await task
            during = statements.running
        return seen[0], during

    assert asyncio.run(main()) == (1, 1)
    assert statements.running == 0

"""A lease is a promise to stop: an agent whose step another George took over is stopped,
and so is every agent once renewals have failed until the leases may have run out."""

from __future__ import annotations

import asyncio
import time

from georgebot.engine.supervision import Supervisor


class Keeper:
    def __init__(self) -> None:
        self.holds: list[float] = []

    def hold(self, seconds: float) -> None:
        self.holds.append(seconds)

    def stop(self, previous: object) -> str:
        return "none of its processes were left"


async def forever() -> None:
    await asyncio.Event().wait()


async def test_an_agent_whose_step_another_george_took_is_stopped():
    async def renew(step_ids: list[int]) -> set[int]:
        return {2}  # step 2 runs under another George now

    keeper = Keeper()
    supervisor = Supervisor(renew=renew, lease=10, keeper=keeper)
    supervisor.spawn(1, forever(), name="one", agent=None, job_id=1)
    supervisor.spawn(2, forever(), name="two", agent=None, job_id=1)

    await supervisor.renew()

    assert supervisor.running(1) and not supervisor.running(2)
    assert 7.9 < keeper.holds[-1] <= 8.0  # the lease less its margin: tools stop before anyone claims
    await supervisor.close()


async def test_every_agent_stops_once_failed_renewals_may_have_let_the_leases_run_out():
    async def renew(step_ids: list[int]) -> set[int]:
        raise OSError("the database is gone")

    supervisor = Supervisor(renew=renew, lease=0.05)
    supervisor.spawn(1, forever(), name="one", agent=None, job_id=1)
    supervisor.held(time.monotonic() - 1.0)  # the last renewal is long past

    await supervisor.renew()

    assert not supervisor.running(1)
    await supervisor.close()


async def test_a_failed_renewal_within_the_lease_stops_nothing():
    async def renew(step_ids: list[int]) -> set[int]:
        raise OSError("busy for a moment")

    supervisor = Supervisor(renew=renew, lease=60)
    supervisor.spawn(1, forever(), name="one", agent=None, job_id=1)
    supervisor.held(time.monotonic())

    await supervisor.renew()

    assert supervisor.running(1)
    await supervisor.close()

"""`cancel_and_wait`: the task it stops ends quietly; a cancellation aimed at the caller is not swallowed."""

from __future__ import annotations

import asyncio

import pytest

from shared.lifecycle import cancel_and_wait


async def test_the_stopped_task_ends_and_its_cancellation_stays_inside() -> None:
    background = asyncio.create_task(asyncio.Event().wait())
    await cancel_and_wait(background)
    assert background.cancelled()
    await cancel_and_wait(None)


async def test_a_caller_cancelled_while_it_waits_is_cancelled() -> None:
    running, cleaning_up, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            running.set()
            await asyncio.Event().wait()
        finally:
            cleaning_up.set()
            await asyncio.shield(release.wait())  # takes its time to clean up

    background = asyncio.create_task(slow_to_stop())
    await running.wait()
    stopper = asyncio.create_task(cancel_and_wait(background))
    await cleaning_up.wait()
    stopper.cancel()  # whoever runs the stop is itself told to stop
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert stopper.cancelled()

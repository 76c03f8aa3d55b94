"""One answer at a time: a gate in front of the LLM with a bounded line.

The LLM is one model in one process; two generations at once would only halve
each one's speed and double the memory for activations. Requests that find it
busy wait their turn in arrival order, at most ``queue_size`` of them; one more
is turned away at once (HTTP 429) with a ``Retry-After`` estimated from how long
recent answers took, instead of piling up until clients time out.
"""

from __future__ import annotations

import math
import time
from types import TracebackType

import anyio

# Until an answer has been timed, guess this many seconds per answer.
FIRST_ESTIMATE_S = 5.0
# Weight of the newest answer in the running mean of answer times.
SMOOTHING = 0.3


class QueueFull(Exception):
    """Every place in the line is taken; try again after ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the answer queue is full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class AnswerGate:
    """Hands out ``Ticket``s: one holder answers, up to ``queue_size`` wait (FIFO)."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._turn = anyio.Lock(fast_acquire=False)  # anyio locks wake waiters in order
        self._held = 0  # tickets not yet given back: the one answering plus those waiting
        self._mean_s = FIRST_ESTIMATE_S

    @property
    def held(self) -> int:
        return self._held

    def reserve(self) -> Ticket:
        """A place in line, or ``QueueFull`` at once when there is none.

        Reserving is synchronous, so a server can answer 429 before it starts a
        response; ``async with ticket:`` then waits for the turn.
        """
        if self._held >= self.queue_size + 1:
            raise QueueFull(self.retry_after_s())
        self._held += 1
        return Ticket(self)

    def retry_after_s(self) -> int:
        """Seconds until a place is likely free: when the answer now running ends."""
        return max(1, math.ceil(self._mean_s))

    def _record(self, seconds: float) -> None:
        self._mean_s = (1 - SMOOTHING) * self._mean_s + SMOOTHING * seconds


class Ticket:
    """One request's place in line; ``async with`` it to answer, or ``release`` it unused.

    ``release`` may be called any number of times (a response's cleanup may run
    after the answer already gave the place back).
    """

    def __init__(self, gate: AnswerGate) -> None:
        self._gate = gate
        self._released = False
        self._started: float | None = None

    async def __aenter__(self) -> Ticket:
        if self._released:
            raise RuntimeError("this ticket was already given back")
        await self._gate._turn.acquire()
        self._started = time.perf_counter()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._started is not None:
            self._gate._record(time.perf_counter() - self._started)
            self._started = None
            self._gate._turn.release()
        self.release()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._gate._held -= 1

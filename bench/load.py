"""Simulated users on the REST channel: throughput, latency percentiles, cost of history."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import aiohttp

from bench.progress import say

REQUEST_TIMEOUT_SECONDS = 300


class LoadFailed(RuntimeError):
    """The server answered nothing usable."""


# Every message sent in a run is different: a held-out text plus a running
# number, so no cache of earlier messages (the server keeps sentence vectors of
# texts it has seen) makes the figures look better than new questions would.
_message_numbers = itertools.count(1)


def unique_message(rng: random.Random, texts: Sequence[str]) -> str:
    """A held-out text the server has not seen in this run."""
    return f"{rng.choice(texts)} (#{next(_message_numbers)})"


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class LevelResult:
    """One concurrency level: completed messages, errors and latencies (ms)."""

    users: int
    seconds: float
    latencies_ms: List[float] = field(default_factory=list)
    errors: int = 0
    peak_rss_mb: Optional[float] = None

    @property
    def messages(self) -> int:
        """Messages answered (status 200) inside the measured window."""
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Answered messages per second."""
        return self.messages / self.seconds if self.seconds else 0.0

    def p(self, percent: float) -> float:
        """Latency percentile in ms."""
        return percentile(sorted(self.latencies_ms), percent)


@dataclass(frozen=True)
class TurnGrowth:
    """Latency of one long conversation, turn by turn (ms)."""

    latencies_ms: List[float]

    @property
    def first(self) -> float:
        """Median of the first five turns."""
        return statistics.median(self.latencies_ms[:5])

    @property
    def last(self) -> float:
        """Median of the last five turns."""
        return statistics.median(self.latencies_ms[-5:])


class ConversationClient:
    """Posts user messages to the REST webhook and times the replies."""

    def __init__(self, session: aiohttp.ClientSession, url: str, label: str) -> None:
        self.session = session
        self.url = url
        self.label = label

    def new_sender(self) -> str:
        """A fresh conversation id."""
        return f"bench-{self.label}-{uuid.uuid4().hex[:12]}"

    async def say(self, sender: str, text: str) -> Optional[float]:
        """Sends one message; the latency in ms, or None unless the answer is a 200 JSON list."""
        started = time.perf_counter()
        try:
            async with self.session.post(self.url, json={"sender": sender, "message": text}) as response:
                body = await response.json(content_type=None)
                ok = response.status == 200 and isinstance(body, list)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None
        return (time.perf_counter() - started) * 1000 if ok else None


def new_session(users: int) -> aiohttp.ClientSession:
    """One keep-alive connection per simulated user."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=users + 5),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
    )


async def _user(
    client: ConversationClient,
    texts: Sequence[str],
    seed: int,
    turns_per_conversation: int,
    measure_from: float,
    stop_at: float,
    result: LevelResult,
) -> None:
    """One user: conversations of a few turns, the next message as soon as the reply comes."""
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        sender = client.new_sender()
        for _ in range(turns_per_conversation):
            sent_at = time.monotonic()
            if sent_at >= stop_at:
                return
            latency = await client.say(sender, unique_message(rng, texts))
            answered_at = time.monotonic()
            # A reply counts if it arrives inside the window, whenever it was sent:
            # at 50 users a reply can take longer than a short window.
            if not measure_from <= answered_at <= stop_at:
                continue
            if latency is None:
                result.errors += 1
            else:
                result.latencies_ms.append(latency)


async def run_level(
    url: str,
    label: str,
    texts: Sequence[str],
    users: int,
    warmup_seconds: float,
    seconds: float,
    turns_per_conversation: int,
    sample_rss: Callable[[], Optional[float]],
) -> LevelResult:
    """`users` closed-loop users (no think time) for a warm-up, then a measured window."""
    result = LevelResult(users=users, seconds=seconds)
    start = time.monotonic()
    measure_from = start + warmup_seconds
    stop_at = measure_from + seconds
    async with new_session(users) as session:
        client = ConversationClient(session, url, f"{label}-{users}u")
        tasks = [
            asyncio.create_task(
                _user(client, texts, 1000 * users + index, turns_per_conversation, measure_from, stop_at, result)
            )
            for index in range(users)
        ]
        peak: Optional[float] = None
        next_note = measure_from
        try:
            while not all(task.done() for task in tasks):
                await asyncio.sleep(0.25)
                now = time.monotonic()
                if now >= measure_from:
                    rss = sample_rss()
                    if rss is not None:
                        peak = rss if peak is None else max(peak, rss)
                if measure_from <= now <= stop_at and now >= next_note:
                    say(
                        f"    {label} {users:>2} users: {now - measure_from:>4.0f}/{seconds:.0f} s, "
                        f"{result.messages} answered, {result.errors} errors"
                    )
                    next_note += max(10.0, seconds / 4)
            for task in tasks:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    result.peak_rss_mb = peak
    if not result.latencies_ms:
        raise LoadFailed(f"{label}: no answer at {users} users ({result.errors} errors)")
    return result


async def warm_up(url: str, label: str, texts: Sequence[str], messages: int) -> None:
    """A few conversations first, so lazy loading is not measured."""
    async with new_session(1) as session:
        client = ConversationClient(session, url, f"{label}-warmup")
        sender = client.new_sender()
        for index in range(messages):
            if index % 5 == 0:
                sender = client.new_sender()
            if await client.say(sender, texts[index % len(texts)]) is None:
                raise LoadFailed(f"{label}: the server did not answer a warm-up message")


async def turn_growth(url: str, label: str, texts: Sequence[str], turns: int) -> TurnGrowth:
    """One sender, `turns` sequential messages: does each turn cost more as history grows?"""
    rng = random.Random(turns)
    latencies: List[float] = []
    async with new_session(1) as session:
        client = ConversationClient(session, url, f"{label}-history")
        sender = client.new_sender()
        for turn in range(1, turns + 1):
            latency = await client.say(sender, unique_message(rng, texts))
            if latency is None:
                raise LoadFailed(f"{label}: no answer at turn {turn} of the long conversation")
            latencies.append(latency)
            if turn % 25 == 0:
                say(f"    {label} long conversation: turn {turn}/{turns}, last {latency:.0f} ms")
    return TurnGrowth(latencies)

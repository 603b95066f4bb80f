"""`python -m bot.rasa_server run ...`: Rasa's own `rasa` command, with fixes to Rasa 3.6 applied first.

Each one removes work from the server's single event loop, or orders it, where
it delays every other person's message; none changes a result.

- Rasa 3.6 checks every reply of the action server with ``jsonschema.validate``,
  which first validates Rasa's own (large, constant) response schema against the
  JSON Schema meta-schema: about 30 ms per custom action call (an escalation, a
  request for a person). Here the schema is compiled once and every reply is
  checked against it as before, with the same error.
- The model's graphs run through ``bot.graph_runner.SequentialGraphRunner``
  instead of dask's scheduler (about 1 ms less per message).
- Turns are served first come, first served (``bot.turn_scheduler``): a turn
  that waits for the action server is no longer overtaken, at each wait, by
  every message that arrived meanwhile.
- Before a message queues for its turn, NLU components that offer
  ``prepare_text`` (the sentence encoder) compute what they will need on a
  worker thread, on the second core, while the loop serves other messages.
  The loop offers Python's lock to that thread every millisecond, not every 5.
  At most ``MAX_WAITING_PREPARATIONS`` wait for that thread: beyond that a
  message is not prepared ahead (its turn computes it) and never waits.
- Request bodies are limited to ``MAX_REQUEST_BYTES`` (Sanic's default is
  100 MB): a larger one gets a 413 before it is read.
- A custom action call times out after ``ACTION_SERVER_TIMEOUT`` seconds
  (default 10), not Rasa's fixed 5 minutes (``DEFAULT_REQUEST_TIMEOUT``,
  imported by ``rasa.core.actions.action``): the replies of a turn, the
  crisis reply among them on the REST channel, are sent when the turn ends,
  so a hanging action server held them that long. The action's events are
  lost either way; escalations are recorded in this server before that.
- Once the model is loaded, everything loaded so far is moved out of reach of
  Python's cyclic garbage collector (``gc.freeze``). Its full collections
  otherwise walked the ~650,000 objects of the loaded libraries and model,
  about 300 ms during which no message was answered.

Also: logs are kept free of people's words and secrets (``bot.log_privacy``),
and ``run`` takes its ``--auth-token`` from ``RASA_AUTH_TOKEN`` so that the token
is never on the command line. Everything else, arguments included, is the
`rasa` command line unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import sys
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Text

from sanic.exceptions import PayloadTooLarge
from sanic.response import HTTPResponse
from sanic.response import json as sanic_json

if TYPE_CHECKING:
    from bot.turn_scheduler import TurnScheduler

logger = logging.getLogger(__name__)

# How often a busy thread offers Python's lock to a waiting one (default 0.005).
SWITCH_INTERVAL_SECONDS = 0.001
# A 20,000-character message (the channels' limit) and its metadata, as JSON.
MAX_REQUEST_BYTES = 64 * 1024
# Messages waiting for the preparation thread; later ones skip preparation.
MAX_WAITING_PREPARATIONS = 16
# A skipped preparation is logged with the count so far at most this often.
SKIPPED_LOG_INTERVAL_SECONDS = 60.0


@functools.lru_cache(maxsize=1)
def _action_response_validator() -> Any:
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _validate_action_result(self: Any, result: Dict[Text, Any]) -> bool:
    """RemoteAction._validate_action_result with the schema compiled once."""
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from rasa.shared.constants import DOCS_BASE_URL

    error: Optional[ValidationError] = best_match(_action_response_validator().iter_errors(result))
    if error is None:
        return True
    # Same message as Rasa's own check.
    error.message += (
        ". Failed to validate Action server response from API, "
        "make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
    )
    raise error


def install_action_response_check() -> None:
    """Make Rasa's RemoteAction check action server replies against a compiled schema."""
    from rasa.core.actions.action import RemoteAction

    patched: Callable[..., bool] = _validate_action_result
    RemoteAction._validate_action_result = patched  # type: ignore[method-assign]


def install_action_timeout(seconds: float) -> None:
    """Make Rasa's custom action calls give up after `seconds` instead of 5 minutes."""
    import rasa.core.actions.action

    rasa.core.actions.action.DEFAULT_REQUEST_TIMEOUT = seconds  # type: ignore[attr-defined]


def install_sequential_graph_runner() -> None:
    """Make models loaded from now on run their graphs with SequentialGraphRunner."""
    import rasa.core.processor

    from bot.graph_runner import SequentialGraphRunner

    rasa.core.processor.DaskGraphRunner = SequentialGraphRunner  # type: ignore[misc]


def install_turn_scheduler(scheduler: Optional["TurnScheduler"] = None) -> "TurnScheduler":
    """Serve Rasa's message turns first come, first served; returns the scheduler in use.

    Replies sent through a messaging platform's API (Telegram, Slack, Twilio,
    Messenger) are long waits: the turn gives the loop up while they are sent.
    Replies collected in memory (REST) or queued for a socket (the widget) are not.
    """
    from rasa.core.channels.channel import CollectingOutputChannel
    from rasa.core.channels.socketio import SocketIOOutput
    from rasa.core.processor import MessageProcessor

    from bot.turn_scheduler import TurnScheduler

    installed: Optional[TurnScheduler] = getattr(MessageProcessor.handle_message, "turn_scheduler", None)
    if installed is not None:
        return installed
    chosen = scheduler or TurnScheduler()
    handle_message = MessageProcessor.handle_message
    send_bot_messages = MessageProcessor._send_bot_messages
    preparation = _TextPreparation()

    @functools.wraps(handle_message)
    async def scheduled_handle_message(self: MessageProcessor, message: Any) -> Any:
        arrived = asyncio.get_running_loop().time()
        await preparation.prepare(self, message.text)
        async with chosen.turn(arrived):
            return await handle_message(self, message)

    # A static method in Rasa 3.6: called as self._send_bot_messages(events, tracker, channel).
    @functools.wraps(send_bot_messages)
    async def scheduled_send_bot_messages(events: Any, tracker: Any, output_channel: Any) -> Any:
        if isinstance(output_channel, (CollectingOutputChannel, SocketIOOutput)):
            return await send_bot_messages(events, tracker, output_channel)
        async with chosen.outside():
            return await send_bot_messages(events, tracker, output_channel)

    scheduled_handle_message.turn_scheduler = chosen  # type: ignore[attr-defined]
    MessageProcessor.handle_message = scheduled_handle_message  # type: ignore[method-assign]
    MessageProcessor._send_bot_messages = staticmethod(scheduled_send_bot_messages)  # type: ignore[method-assign]
    return chosen


class _TextPreparation:
    """Runs the model's `prepare_text(text)` hooks on one worker thread, off the event loop.

    Bounded: at most `max_waiting` messages are handed to the thread at once.
    A message beyond that is not prepared ahead (its turn computes the same
    thing), so a flood never grows a queue and never delays a reply; the
    skips are counted and the count is logged.
    """

    def __init__(self, max_waiting: int = MAX_WAITING_PREPARATIONS) -> None:
        self._executor: Optional[ThreadPoolExecutor] = None
        self._hooks: "weakref.WeakKeyDictionary[Any, List[Callable[[Text], None]]]" = weakref.WeakKeyDictionary()
        self.max_waiting = max_waiting
        self.waiting = 0
        self.skipped = 0
        self._skips_logged_at: Optional[float] = None

    async def prepare(self, processor: Any, text: Optional[Text]) -> None:
        """Prepares `text` for this processor's model; never fails the message."""
        if not text or text.startswith("/"):
            return  # empty, or an intent payload (a button): nothing to compute
        hooks = self._hooks_of(processor)
        if not hooks:
            return
        if self.waiting >= self.max_waiting:
            self._skip()
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-text")
        self.waiting += 1
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, _run_hooks, hooks, text)
        except Exception:  # noqa: BLE001  # the turn computes it itself
            logger.warning("Preparing a message ahead of its turn failed; it is computed in the turn.", exc_info=True)
        finally:
            self.waiting -= 1

    def _skip(self) -> None:
        self.skipped += 1
        now = asyncio.get_running_loop().time()
        if self._skips_logged_at is None or now - self._skips_logged_at >= SKIPPED_LOG_INTERVAL_SECONDS:
            self._skips_logged_at = now
            logger.warning(
                "Busy: %d message(s) so far were not prepared ahead of their turn (more than %d waiting).",
                self.skipped,
                self.max_waiting,
            )

    def _hooks_of(self, processor: Any) -> List[Callable[[Text], None]]:
        runner = getattr(processor, "graph_runner", None)
        if runner is None:
            return []
        hooks = self._hooks.get(runner)
        if hooks is None:
            hooks = []
            for node in getattr(runner, "_instantiated_nodes", {}).values():
                hook = getattr(getattr(node, "_component", None), "prepare_text", None)
                if callable(hook):
                    hooks.append(hook)
            self._hooks[runner] = hooks
        return hooks


def _run_hooks(hooks: List[Callable[[Text], None]], text: Text) -> None:
    for hook in hooks:
        hook(text)


def _payload_too_large(max_bytes: int) -> Callable[[Any, Exception], HTTPResponse]:
    """The 413 answer, in the same `{"error": ...}` shape as the channels' other refusals."""

    def handler(request: Any, exception: Exception) -> HTTPResponse:
        return sanic_json({"error": f"The request body is larger than {max_bytes} bytes."}, status=413)

    return handler


def install_request_size_limit(max_bytes: int = MAX_REQUEST_BYTES) -> None:
    """Make the app `rasa run` builds refuse request bodies over `max_bytes` with a 413."""
    import rasa.core.run

    configure_app = rasa.core.run.configure_app
    if getattr(configure_app, "limits_request_size", False):
        return

    @functools.wraps(configure_app)
    def configure_bounded_app(*args: Any, **kwargs: Any) -> Any:
        app = configure_app(*args, **kwargs)
        # Read by Sanic for every new connection: a declared Content-Length
        # over it is refused before the body is read, a streamed body once it
        # passes the limit.
        app.config.REQUEST_MAX_SIZE = max_bytes
        app.error_handler.add(PayloadTooLarge, _payload_too_large(max_bytes))
        return app

    configure_bounded_app.limits_request_size = True  # type: ignore[attr-defined]
    rasa.core.run.configure_app = configure_bounded_app  # type: ignore[assignment]


def freeze_loaded_objects() -> None:
    """Collect garbage once, then keep everything alive now out of later cyclic collections."""
    gc.collect()
    gc.freeze()
    logger.debug("%d objects moved out of reach of the cyclic garbage collector.", gc.get_freeze_count())


def install_gc_freeze_after_model_load() -> None:
    """Freeze what the server has loaded as soon as its model is ready (`rasa run`)."""
    import rasa.core.run

    load_agent_on_start = rasa.core.run.load_agent_on_start
    if getattr(load_agent_on_start, "freezes_loaded_objects", False):
        return

    @functools.wraps(load_agent_on_start)
    async def load_agent_then_freeze(*args: Any, **kwargs: Any) -> Any:
        agent = await load_agent_on_start(*args, **kwargs)
        freeze_loaded_objects()
        return agent

    load_agent_then_freeze.freezes_loaded_objects = True  # type: ignore[attr-defined]
    rasa.core.run.load_agent_on_start = load_agent_then_freeze  # type: ignore[assignment]


def apply_fixes() -> None:
    """Every fix, for any process that serves a model in-process (the server, the benchmark's profiler)."""
    install_action_response_check()
    install_sequential_graph_runner()
    install_turn_scheduler()
    install_gc_freeze_after_model_load()
    install_request_size_limit()


def main(argv: Optional[List[str]] = None) -> None:
    """Apply the fixes, then run the `rasa` command line with these arguments."""
    # NumPy's OpenBLAS would otherwise start a thread per core that spins
    # between the server's small matrix products, taking the second core from
    # the action server and the sentence encoder. Read when NumPy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # The sentence encoder's worker thread needs Python's lock briefly before and
    # after each computation; by default the busy event loop hands it over only
    # every 5 ms, which made the worker wait longer than it computed.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    from rasa.__main__ import main as rasa_main

    from bot import log_privacy
    from bot.settings import Settings

    token = os.environ.get("RASA_AUTH_TOKEN", "").strip()
    log_privacy.install(secrets=(token, os.environ.get("ACTION_SERVER_TOKEN", "").strip()))
    log_privacy.install_rasa_message_hook()
    apply_fixes()
    install_action_timeout(Settings.from_env().action_timeout_seconds)
    args = list(sys.argv[1:] if argv is None else argv)
    # The token reaches Rasa's arguments in-process, never the command line (`ps` shows that).
    if args[:1] == ["run"] and token and "--auth-token" not in args:
        args += ["--auth-token", token]
    sys.argv = ["rasa", *args]
    rasa_main()


if __name__ == "__main__":
    main()

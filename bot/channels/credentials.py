"""Turns credentials.yml into the channels Rasa should start: a channel whose variables are unset stays off.

credentials.yml refers to secrets only as `${VAR}` (required) or `${VAR:-}`
(optional). Rasa's YAML loader raises on any unset `${VAR}`, so
`write_active_credentials` keeps a channel section only when every required
variable it refers to is set, drops optional keys whose variable is unset,
and writes the result for `rasa run --credentials`. Values are never
substituted here: the written file still holds `${VAR}` references and Rasa
expands them from its own environment when it loads the file, so no secret
is ever written to disk.

A channel can also need more than its variables to be safe to switch on:
`REFUSALS` holds those rules (today: Telegram without a secret token, which
would let anyone write into any Telegram chat's conversation). A refused
channel stays off and the reason is logged at every start.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import yaml

logger = logging.getLogger(__name__)

TELEGRAM_CHANNEL = "bot.channels.messaging.telegram.VerifiedTelegramInput"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?\}")


class ChannelOff(Exception):
    """A channel section refers to a required variable that is not set."""


def is_set(env: Mapping[str, str], name: str) -> bool:
    """A variable counts as set when it holds more than whitespace."""
    return bool(env.get(name, "").strip())


def is_true(value: Any) -> bool:
    """A yes/no setting (a variable or a credentials.yml value): true, yes, on or 1, in any case."""
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def _activate_text(value: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, optional = match.group(1), match.group(2)
        if is_set(env, name):
            return "${" + name + "}"
        if optional:
            return ""
        raise ChannelOff(name)

    return _VARIABLE.sub(replace, value)


_DROP = object()


def _activate(value: Any, env: Mapping[str, str]) -> Any:
    """The value with optional references resolved; `_DROP` when nothing is left of it."""
    if isinstance(value, str):
        had_variables = _VARIABLE.search(value) is not None
        activated = _activate_text(value, env)
        return _DROP if had_variables and not activated.strip() else activated
    if isinstance(value, dict):
        kept = {key: _activate(item, env) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not _DROP}
    if isinstance(value, list):
        return [item for item in (_activate(item, env) for item in value) if item is not _DROP]
    return value


def telegram_refusal(env: Mapping[str, str]) -> Optional[str]:
    """Telegram does not sign updates: without a secret token the webhook would take updates from anyone."""
    if is_set(env, "TELEGRAM_SECRET_TOKEN"):
        return None
    if is_true(env.get("TELEGRAM_ALLOW_UNVERIFIED")):
        logger.warning(
            "TELEGRAM_ALLOW_UNVERIFIED is true: the Telegram channel is on WITHOUT a secret token. Anyone who "
            "finds the webhook URL can write into any Telegram chat's conversation. Set TELEGRAM_SECRET_TOKEN."
        )
        return None
    return (
        "TELEGRAM_SECRET_TOKEN is unset, so nothing would prove that updates come from Telegram. "
        "Set it (1-256 characters of A-Z, a-z, 0-9, _ and -), "
        "or set TELEGRAM_ALLOW_UNVERIFIED=true to accept that risk."
    )


# Channel (as named in credentials.yml) -> why it must stay off with this environment, or None.
REFUSALS: Dict[str, Callable[[Mapping[str, str]], Optional[str]]] = {TELEGRAM_CHANNEL: telegram_refusal}


def active_credentials(template: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The channel sections of `template` that can start with `env`, in their original order."""
    active: dict[str, Any] = {}
    for channel, section in template.items():
        try:
            activated = _activate(section, env)
        except ChannelOff:
            continue
        refusal = REFUSALS.get(channel)
        reason = refusal(env) if refusal else None
        if reason:
            logger.error("The %s channel stays off: %s", channel.rsplit(".", 1)[-1], reason)
            continue
        active[channel] = None if activated is _DROP else activated
    return active


def _check_rasa_expands(text: str) -> None:
    """Rasa expands `${VAR}` in plain scalars only: a quoted one would reach the channel as literal text."""
    pending = [yaml.compose(text)]
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.ScalarNode):
            if _VARIABLE.search(node.value) and node.style is not None:
                raise ValueError(f"{node.value!r} cannot be written so that Rasa expands it; simplify the value.")
        elif isinstance(node, yaml.MappingNode):
            pending.extend(item for pair in node.value for item in pair)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)


def write_active_credentials(template: Path, env: Mapping[str, str], out: Path) -> List[str]:
    """Writes the channels of `template` whose variables are set in `env` to `out`.

    Sections without variables (the REST channel) always stay. The file is
    written atomically with mode 600 and holds `${VAR}` references only.

    Returns:
        The enabled channels, as named in credentials.yml (module path of the
        channel class), in file order.
    """
    loaded = yaml.safe_load(template.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{template} must map channel names to their settings.")
    active = active_credentials(loaded, env)
    text = (
        "# Generated from credentials.yml by bot.channels.credentials: do not edit.\n"
        "# Only channels whose environment variables are set; Rasa expands ${VAR} at load time.\n"
    )
    if active:
        text += yaml.safe_dump(active, sort_keys=False, default_flow_style=False, allow_unicode=True)
        _check_rasa_expands(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return list(active)

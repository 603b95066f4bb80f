"""`python -m bot.rasa_server run ...`: Rasa's own `rasa` command, with two fixes to Rasa 3.6 applied first.

Both remove work from the server's single event loop, where it delays every
other person's message; neither changes a result.

- Rasa 3.6 checks every reply of the action server with ``jsonschema.validate``,
  which first validates Rasa's own (large, constant) response schema against the
  JSON Schema meta-schema: about 30 ms per custom action call (an escalation, a
  request for a person). Here the schema is compiled once and every reply is
  checked against it as before, with the same error.
- The model's graphs run through ``bot.graph_runner.SequentialGraphRunner``
  instead of dask's scheduler (about 1 ms less per message).

Everything else, arguments included, is the `rasa` command line unchanged.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Dict, List, Optional, Text


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


def install_sequential_graph_runner() -> None:
    """Make models loaded from now on run their graphs with SequentialGraphRunner."""
    import rasa.core.processor

    from bot.graph_runner import SequentialGraphRunner

    rasa.core.processor.DaskGraphRunner = SequentialGraphRunner  # type: ignore[misc]


def apply_fixes() -> None:
    """Both fixes, for any process that serves a model in-process (the server, the benchmark's profiler)."""
    install_action_response_check()
    install_sequential_graph_runner()


def main(argv: Optional[List[str]] = None) -> None:
    """Apply the fixes, then run the `rasa` command line with these arguments."""
    from rasa.__main__ import main as rasa_main

    apply_fixes()
    sys.argv = ["rasa", *(sys.argv[1:] if argv is None else argv)]
    rasa_main()


if __name__ == "__main__":
    main()

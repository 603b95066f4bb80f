"""`python -m bot.rasa_server run ...`: Rasa's own `rasa` command, with one fix to Rasa 3.6 applied first.

Rasa 3.6 checks every reply of the action server with ``jsonschema.validate``,
which first validates Rasa's own (large, constant) response schema against the
JSON Schema meta-schema: about 30 ms of the server's single event loop per
custom action call (an escalation, a request for a person), during which no
other person's message is handled. Here the schema is compiled once and every
reply is checked against it exactly as before, with the same error.

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


def main(argv: Optional[List[str]] = None) -> None:
    """Apply the fix, then run the `rasa` command line with these arguments."""
    from rasa.__main__ import main as rasa_main

    install_action_response_check()
    sys.argv = ["rasa", *(sys.argv[1:] if argv is None else argv)]
    rasa_main()


if __name__ == "__main__":
    main()

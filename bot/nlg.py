"""In-process response rendering that fills in the region's crisis resources."""

from __future__ import annotations

from typing import Any, Dict, Optional, Text

from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.crisis import load_crisis_resources
from bot.settings import Settings


class RegionalResponseGenerator(TemplatedNaturalLanguageGenerator):
    """Renders domain responses with `{emergency_number}`, `{crisis_line}` filled in.

    Runs inside the Rasa server, like Rasa's default generator, so crisis
    replies never depend on another service. Configured in endpoints.yml as
    `nlg: {type: bot.nlg.RegionalResponseGenerator}`; the file comes from
    CRISIS_RESOURCES_FILE (default crisis_resources.yml) and the region from
    CRISIS_REGION or the file's `region`.
    """

    def __init__(self, endpoint_config: Optional[EndpointConfig], domain: Domain) -> None:
        """Loads the crisis resources once; a bad file stops the server at start."""
        super().__init__(domain.responses)
        settings = Settings.from_env()
        self.crisis = load_crisis_resources(settings.crisis_resources_file, settings.crisis_region)
        self._variables: Dict[Text, Any] = self.crisis.as_template_variables()

    async def generate(
        self,
        utter_action: Text,
        tracker: DialogueStateTracker,
        output_channel: Text,
        **kwargs: Any,
    ) -> Optional[Dict[Text, Any]]:
        """Generates the response with the crisis variables available to it."""
        return await super().generate(
            utter_action, tracker, output_channel, **{**self._variables, **kwargs}
        )

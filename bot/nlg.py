"""In-process response rendering: the region's crisis resources and the "Did you mean" topics."""

from __future__ import annotations

from typing import Any, Dict, Optional, Text

from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.crisis import load_crisis_resources
from bot.escalation.decision import InServerEscalations
from bot.settings import Settings
from bot.suggestions import DID_YOU_MEAN_RESPONSE, NO_SUGGESTIONS_RESPONSE, enough_to_suggest, suggested_topics


class RegionalResponseGenerator(TemplatedNaturalLanguageGenerator):
    """Renders domain responses with `{emergency_number}`, `{crisis_line}` filled in.

    Runs inside the Rasa server, like Rasa's default generator, so crisis
    replies never depend on another service. Configured in endpoints.yml as
    `nlg: {type: bot.nlg.RegionalResponseGenerator}`; the file comes from
    CRISIS_RESOURCES_FILE (default crisis_resources.yml) and the region from
    CRISIS_REGION or the file's `region`.

    `utter_did_you_mean` also gets the FAQ topics closest to the last message
    as its first buttons (see `bot.suggestions`); with fewer than two it is
    rendered as `utter_default` (the general topics) instead. Doing this here
    rather than in a custom action keeps "Did you mean" working without the
    action server and saves the server a remote action call.

    With `record_escalations: true` (endpoints.yml), the escalation decisions
    behind the crisis and care-team responses are recorded durably here,
    before the reply goes out (see `bot.escalation.decision`). Off elsewhere
    (evaluation, tests that render responses): they must not record anything.
    """

    def __init__(self, endpoint_config: Optional[EndpointConfig], domain: Domain) -> None:
        """Loads the crisis resources once; a bad file stops the server at start."""
        super().__init__(domain.responses)
        settings = Settings.from_env()
        self.crisis = load_crisis_resources(settings.crisis_resources_file, settings.crisis_region)
        self._variables: Dict[Text, Any] = self.crisis.as_template_variables()
        self.escalations: Optional[InServerEscalations] = None
        if endpoint_config is not None and endpoint_config.kwargs.get("record_escalations"):
            self.escalations = InServerEscalations.from_config(settings.escalation, settings.escalation_spool_dir)

    async def generate(
        self,
        utter_action: Text,
        tracker: DialogueStateTracker,
        output_channel: Text,
        **kwargs: Any,
    ) -> Optional[Dict[Text, Any]]:
        """Generates the response with the crisis variables available to it."""
        variables = {**self._variables, **kwargs}
        if utter_action == DID_YOU_MEAN_RESPONSE:
            return await self._did_you_mean(tracker, output_channel, variables)
        if self.escalations is not None and self.escalations.handles(utter_action):
            return await self.escalations.render(
                utter_action,
                tracker.sender_id,
                tracker.get_latest_input_channel(),
                [event.as_dict() for event in tracker.events],
                lambda name: self._generate_templated(name, tracker, output_channel, variables),
            )
        return await super().generate(utter_action, tracker, output_channel, **variables)

    async def _generate_templated(
        self, utter_action: Text, tracker: DialogueStateTracker, output_channel: Text, variables: Dict[Text, Any]
    ) -> Optional[Dict[Text, Any]]:
        return await super().generate(utter_action, tracker, output_channel, **variables)

    async def _did_you_mean(
        self, tracker: DialogueStateTracker, output_channel: Text, variables: Dict[Text, Any]
    ) -> Optional[Dict[Text, Any]]:
        """The "Did you mean" response with the closest topics first, or the general topics."""
        latest = tracker.latest_message
        # `self.responses` rather than a copy: the agent replaces it when it loads another model.
        topics = suggested_topics(latest.parse_data if latest else None, self.responses)
        if not enough_to_suggest(topics):
            return await super().generate(NO_SUGGESTIONS_RESPONSE, tracker, output_channel, **variables)
        message = await super().generate(DID_YOU_MEAN_RESPONSE, tracker, output_channel, **variables)
        if message is not None:
            message["buttons"] = [*topics, *(message.get("buttons") or [])]
        return message

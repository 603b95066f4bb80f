"""BoundedRulePolicy predicts what RulePolicy predicts, with work that does not grow with the conversation.

Both policies are trained on the project's real domain, rules and stories (the
trackers `rasa train` would give them) and asked the same question at every step of
long simulated conversations; the bot's side of each conversation is what RulePolicy
predicts, logged with the events Rasa's processor logs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type

import numpy as np
import pytest
import yaml
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.policies.rule_policy import RULES, RULES_NOT_IN_STORIES, RulePolicy
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.recipe import Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.engine.validation import validate
from rasa.graph_components.providers.training_tracker_provider import TrainingTrackerProvider
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    DefinePrevUserUtteredFeaturization,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.generator import TrackerWithCachedStates, TrainingDataGenerator
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.data import TrainingType
from rasa.shared.importers.importer import TrainingDataImporter

from bot.policies.bounded_rule_policy import BoundedRulePolicy

ROOT = Path(__file__).resolve().parents[2]
POLICY_NAMES = {"RulePolicy", "bot.policies.bounded_rule_policy.BoundedRulePolicy"}
LISTEN = "action_listen"

# Intents a person sends in this project, weighted roughly as in real use.
EVERYDAY_INTENTS = [
    ("faq", 8),
    ("greet", 2),
    ("thank", 2),
    ("goodbye", 1),
    ("out_of_scope", 2),
    ("nlu_fallback", 2),
    ("something_else", 1),
    ("bot_challenge", 1),
    ("no_words", 1),
    ("request_human", 2),
    ("affirm", 3),
    ("deny", 3),
    ("risk_urgent", 1),
    ("risk_priority", 1),
    ("provide_contact", 2),
]
OPENING_INTENTS = [name for name, _ in EVERYDAY_INTENTS]
RISK_ENTITIES = {
    "risk_urgent": [{"entity": "risk_level", "value": "urgent"}, {"entity": "risk_category", "value": "suicide"}],
    "risk_priority": [{"entity": "risk_level", "value": "priority"}, {"entity": "risk_category", "value": "abuse"}],
}


# --- Training ----------------------------------------------------------------------


def policy_config() -> Dict[str, Any]:
    """The rule policy's settings from the project's config.yml (whichever of the two it names)."""
    policies = yaml.safe_load((ROOT / "config.yml").read_text())["policies"]
    entry = next(policy for policy in policies if policy["name"] in POLICY_NAMES)
    return {key: value for key, value in entry.items() if key != "name"}


def load_project(domain_path: Path = ROOT / "domain.yml", extra_data: Sequence[Path] = ()) -> Tuple[Domain, List]:
    """The domain and the training trackers `rasa train` builds from the project's data."""
    importer = TrainingDataImporter.load_from_config(
        str(ROOT / "config.yml"), str(domain_path), [str(ROOT / "data"), *map(str, extra_data)]
    )
    domain = importer.get_domain()
    trackers = TrainingDataGenerator(
        importer.get_stories(), domain, **TrainingTrackerProvider.get_default_config()
    ).generate()
    return domain, trackers


def train(policy_class: Type[RulePolicy], domain: Domain, trackers: List, storage_dir: Path) -> RulePolicy:
    """Trains and persists a policy, then loads it back as a server would."""
    storage_dir.mkdir(parents=True, exist_ok=True)
    storage = LocalModelStorage(storage_dir)
    resource = Resource(f"train_{policy_class.__name__}")
    context = ExecutionContext(GraphSchema({}), "test")
    config = {**policy_class.get_default_config(), **policy_config()}
    policy_class.create(dict(config), storage, resource, context).train(trackers, domain)
    return policy_class.load(dict(config), storage, resource, context)


def train_both(domain: Domain, trackers: List, storage_dir: Path) -> Tuple[RulePolicy, RulePolicy]:
    """RulePolicy and BoundedRulePolicy, trained on the same trackers."""
    return train(RulePolicy, domain, trackers, storage_dir), train(BoundedRulePolicy, domain, trackers, storage_dir)


@pytest.fixture(scope="module")
def project() -> Tuple[Domain, List]:
    return load_project()


@pytest.fixture(scope="module")
def policies(project: Tuple[Domain, List], tmp_path_factory: pytest.TempPathFactory) -> Tuple[RulePolicy, RulePolicy]:
    domain, trackers = project
    return train_both(domain, trackers, tmp_path_factory.mktemp("policies"))


# --- Conversations -----------------------------------------------------------------


class Conversation:
    """A conversation as Rasa's processor logs it, with the bot's side predicted by RulePolicy.

    Before every bot action, `check` is called with the tracker as it is then.
    """

    def __init__(self, domain: Domain, reference: RulePolicy, check: Callable[[DialogueStateTracker], None]) -> None:
        self.domain = domain
        self.reference = reference
        self.check = check
        self.tracker = DialogueStateTracker("simulated", domain.slots)
        self.turns = 0

    def log(self, *events: Event) -> None:
        for event in events:
            self.tracker.update(event, self.domain)

    def start_session(self) -> None:
        self.log(ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted(LISTEN))

    def say(self, intent: str, *off_script_actions: Optional[str]) -> None:
        """A user message; `off_script_actions` run first, as followup actions would."""
        self.turns += 1
        entities = RISK_ENTITIES.get(intent, [])
        text = self.text_for(intent)
        parse_data = {"intent": {"name": intent, "confidence": 0.93}, "entities": entities, "text": text}
        self.log(
            UserUttered(text, parse_data["intent"], entities, parse_data),
            *(SlotSet(entity["entity"], entity["value"]) for entity in entities),
        )
        for action in filter(None, off_script_actions):
            self.log(ActionExecuted(action, policy="followup", confidence=1.0), BotUttered("off script"))
        self.respond()

    def text_for(self, intent: str) -> str:
        """What the person writes: the intent itself, as a button would send it."""
        return f"/{intent}"

    def respond(self) -> None:
        """Runs predicted actions until the bot listens again."""
        for _ in range(12):
            self.check(self.tracker)
            prediction = self.reference.predict_action_probabilities(self.tracker, self.domain)
            action = self.domain.action_names_or_texts[int(np.argmax(prediction.probabilities))]
            if self.tracker.latest_action_name == LISTEN:
                self.log(DefinePrevUserUtteredFeaturization(False))
            self.log(
                *prediction.events,
                ActionExecuted(action, policy="policy_0_RulePolicy", confidence=max(prediction.probabilities)),
                *self.action_events(action),
            )
            if action == "action_restart":
                # Restarted schedules action_session_start, which Rasa runs next.
                self.start_session()
                return
            if action in (LISTEN, "action_session_start"):
                return
        self.log(ActionExecuted(LISTEN))

    @staticmethod
    def action_events(action: str) -> List[Event]:
        """The events each action of this project (and Rasa's defaults) returns."""
        if action.startswith("utter_") or action == "action_record_contact":
            return [BotUttered(f"[{action}]")]
        if action == "action_escalate_to_clinician":
            return [SlotSet("escalation_id", "esc-1"), SlotSet("escalation_level", "urgent")]
        if action == "action_default_fallback":
            return [BotUttered("[utter_default]"), UserUtteranceReverted()]
        if action == "action_back":
            return [BotUttered("[utter_back]"), UserUtteranceReverted(), UserUtteranceReverted()]
        if action == "action_restart":
            return [Restarted()]
        if action == "action_session_start":
            return [SessionStarted(), ActionExecuted(LISTEN)]
        return []


def random_intents(seed: int, turns: int, extra: Sequence[Tuple[str, int]] = ()) -> Iterator[Tuple[str, Optional[str]]]:
    """Intents with, now and then, an action the rules did not plan (RulePolicy then finds no rule)."""
    rng = random.Random(seed)
    choices = list(EVERYDAY_INTENTS) + list(extra)
    names, weights = [name for name, _ in choices], [weight for _, weight in choices]
    for _ in range(turns):
        off_script = None
        if rng.random() < 0.08:
            off_script = rng.choice(["utter_greet", "utter_offer_contact", "utter_ask_safe_now"])
        yield rng.choices(names, weights)[0], off_script


def play(conversation: Conversation, seed: int, turns: int, extra: Sequence[Tuple[str, int]] = ()) -> None:
    """Random turns that mostly answer the bot's questions, as people do."""
    rng = random.Random(seed)
    answers = {
        "utter_ask_safe_now": ["affirm", "deny"],
        "utter_offer_contact": ["affirm", "deny"],
        "utter_ask_contact_detail": ["provide_contact", "provide_contact", "deny"],
    }
    for intent, off_script in random_intents(seed, turns, extra):
        asked = [e.action_name for e in conversation.tracker.events if isinstance(e, ActionExecuted)][-2:]
        if asked and asked[0] in answers and rng.random() < 0.8:
            intent = rng.choice(answers[asked[0]])
        conversation.say(intent, off_script)


def opening_actions(intent: str) -> List[str]:
    """The actions of the conversation-start rule for an intent in data/rules.yml."""
    rules = yaml.safe_load((ROOT / "data" / "rules.yml").read_text())["rules"]
    for rule in rules:
        if rule.get("conversation_start") and rule["steps"][0].get("intent") == intent:
            return [step["action"] for step in rule["steps"][1:]]
    return []


# --- Comparing ---------------------------------------------------------------------


def assert_same_prediction(
    tracker: DialogueStateTracker, domain: Domain, reference: RulePolicy, bounded: RulePolicy
) -> None:
    context = f"after {[event.as_story_string() for event in list(tracker.events)[-8:]]}"
    # The states matched against the rules: the last of RulePolicy's, each one the same.
    for use_text in (True, False):
        rule_only_data = reference._get_rule_only_data()
        every_state = reference._prediction_states(tracker, domain, use_text, rule_only_data)
        last_states = bounded._prediction_states(tracker, domain, use_text, rule_only_data)
        assert last_states == every_state[-len(last_states) :], context
        assert len(last_states) in (len(every_state), bounded._rule_reach().max_states), context

    expected, expected_source = reference._predict(tracker, domain)
    actual, actual_source = bounded._predict(tracker, domain)
    assert actual.probabilities == expected.probabilities, context
    assert_same_fields(actual, expected, context)
    if expected_source in reference.lookup[RULES] or not str(expected_source).startswith("["):
        # A matched rule or a default action: the same rule. (With no match the source
        # only describes the states; the bounded one describes fewer of them.)
        assert actual_source == expected_source, context
    public = bounded.predict_action_probabilities(tracker, domain)
    assert public.probabilities == expected.probabilities, context
    assert_same_fields(public, expected, context)


def assert_same_fields(actual: PolicyPrediction, expected: PolicyPrediction, context: str) -> None:
    assert actual.policy_name == "BoundedRulePolicy" and expected.policy_name == "RulePolicy"
    for field in (
        "policy_priority",
        "events",
        "optional_events",
        "is_end_to_end_prediction",
        "is_no_user_prediction",
        "hide_rule_turn",
        "action_metadata",
        "diagnostic_data",
    ):
        assert getattr(actual, field) == getattr(expected, field), f"{field} {context}"


def replayed_events(
    monkeypatch: pytest.MonkeyPatch, policy: RulePolicy, tracker: DialogueStateTracker, domain: Domain
) -> int:
    """How many events one prediction replays (each `DialogueStateTracker.update` of any tracker)."""
    calls = 0
    original = DialogueStateTracker.update

    def counting_update(self: DialogueStateTracker, event: Event, domain: Optional[Domain] = None) -> None:
        nonlocal calls
        calls += 1
        original(self, event, domain)

    with monkeypatch.context() as patch:
        patch.setattr(DialogueStateTracker, "update", counting_update)
        policy.predict_action_probabilities(tracker, domain)
    return calls


def chat(
    domain: Domain, policies: Tuple[RulePolicy, RulePolicy], kind: Type[Conversation] = Conversation
) -> Tuple[Conversation, List[int]]:
    """A conversation that checks both policies at every step; also returns the step count."""
    reference, bounded = policies
    checked = [0]

    def check(tracker: DialogueStateTracker) -> None:
        assert_same_prediction(tracker, domain, reference, bounded)
        checked[0] += 1

    conversation = kind(domain, reference, check)
    conversation.start_session()
    return conversation, checked


# --- Tests -------------------------------------------------------------------------


def test_the_trained_rules_are_what_this_test_assumes(policies: Tuple[RulePolicy, RulePolicy]) -> None:
    reference, bounded = policies
    assert bounded.lookup == reference.lookup
    longest = max(len(bounded._rule_key_to_state(key)) for key in bounded.lookup[RULES])
    assert bounded._rule_reach().max_states == longest + 2
    assert longest <= 8, "a rule this long needs longer conversations in these tests"
    # No rule-only description is long enough to be confused with a shortened one.
    assert bounded._cut_rule_only_descriptions() == frozenset()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_predictions_at_every_step_of_a_long_conversation(
    project: Tuple[Domain, List],
    policies: Tuple[RulePolicy, RulePolicy],
    seed: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    domain, _ = project
    conversation, checked = chat(domain, policies)
    play(conversation, seed, turns=90)

    assert checked[0] >= 2 * conversation.turns
    # The comparison above was between the two computations, not twice the same one.
    reference, bounded = policies
    assert replayed_events(monkeypatch, bounded, conversation.tracker, domain) < replayed_events(
        monkeypatch, reference, conversation.tracker, domain
    ) / 5


def test_the_conversation_covers_every_rule_flow(
    project: Tuple[Domain, List], policies: Tuple[RulePolicy, RulePolicy]
) -> None:
    domain, reference = project[0], policies[0]
    actions = set()
    for seed in [1, 2, 3]:  # the conversations of the test above
        conversation = Conversation(domain, reference, check=lambda tracker: None)
        conversation.start_session()
        play(conversation, seed, turns=90)
        actions |= {event.action_name for event in conversation.tracker.events if isinstance(event, ActionExecuted)}
    assert {
        "utter_intro",
        "utter_faq",
        "utter_crisis",
        "utter_crisis_priority",
        "utter_glad_safe",
        "utter_crisis_not_safe",
        "utter_ask_contact_detail",
        "utter_contact_declined",
        "action_record_contact",
        "action_request_care_team",
        "utter_did_you_mean",
        "action_default_fallback",
    } <= actions


@pytest.mark.parametrize("opening", OPENING_INTENTS)
def test_same_predictions_from_the_first_message(
    project: Tuple[Domain, List], policies: Tuple[RulePolicy, RulePolicy], opening: str
) -> None:
    domain, _ = project
    conversation, checked = chat(domain, policies)
    conversation.say(opening)
    play(conversation, len(opening), turns=12)
    assert checked[0] >= 2 * conversation.turns
    opening_actions = [
        event.action_name for event in conversation.tracker.events if isinstance(event, ActionExecuted)
    ][1:3]
    # Risk and contact details are answered at once; everything else starts with the introduction.
    introduced = opening not in ("risk_urgent", "risk_priority", "provide_contact")
    assert opening_actions[0] == LISTEN and (opening_actions[1] == "utter_intro") == introduced


@pytest.mark.parametrize("opening", OPENING_INTENTS)
def test_same_predictions_when_a_later_turn_looks_like_an_opening(
    project: Tuple[Domain, List], policies: Tuple[RulePolicy, RulePolicy], opening: str
) -> None:
    # The longest rules are openings; mid-conversation only their first state (the
    # conversation start) tells them apart, so it must be among the states checked.
    domain, _ = project
    conversation, checked = chat(domain, policies)
    play(conversation, 12, turns=20)
    conversation.say(opening, *opening_actions(opening))
    play(conversation, 13, turns=3)
    assert checked[0] >= 2 * conversation.turns


@pytest.mark.parametrize("reset", ["restart", "session_start"])
@pytest.mark.parametrize("turns_before", [1, 3, 40])
def test_same_predictions_after_a_restart_or_new_session_mid_conversation(
    project: Tuple[Domain, List], policies: Tuple[RulePolicy, RulePolicy], reset: str, turns_before: int
) -> None:
    domain, _ = project
    conversation, checked = chat(domain, policies)
    play(conversation, 7, turns=turns_before)
    if reset == "restart":
        conversation.say("restart")
        assert any(isinstance(event, Restarted) for event in conversation.tracker.events)
    else:
        # A session that expired: Rasa runs action_session_start before the next message.
        conversation.start_session()
    # The conversation-start rules apply again after the reset.
    conversation.say("greet")
    assert conversation.tracker.latest_action_name == LISTEN
    assert [e.action_name for e in conversation.tracker.events if isinstance(e, ActionExecuted)][-2] == "utter_intro"
    play(conversation, 8, turns=15)
    assert checked[0] >= 2 * conversation.turns


def test_same_predictions_when_the_user_goes_back(
    project: Tuple[Domain, List], policies: Tuple[RulePolicy, RulePolicy]
) -> None:
    domain, _ = project
    conversation, checked = chat(domain, policies)
    # "back" reverts the last two user turns; several in a row reach past a short tail.
    play(conversation, 11, turns=70, extra=[("back", 6)])
    conversation.say("faq")
    for _ in range(6):
        conversation.say("back")
    conversation.say("thank")
    assert sum(isinstance(event, UserUtteranceReverted) for event in conversation.tracker.events) > 20
    assert checked[0] >= 2 * conversation.turns


def test_the_work_per_prediction_is_the_same_at_turn_10_and_turn_100(
    project: Tuple[Domain, List], policies: Tuple[RulePolicy, RulePolicy], monkeypatch: pytest.MonkeyPatch
) -> None:
    domain, _ = project
    reference, bounded = policies
    conversation = Conversation(domain, reference, check=lambda tracker: None)
    conversation.start_session()
    work: Dict[str, Dict[int, int]] = {"bounded": {}, "rule": {}}
    for turn in range(1, 101):
        conversation.tracker.update(
            UserUttered("/faq", {"name": "faq", "confidence": 0.9}), domain
        )  # the same turn every time, so the work can be compared exactly
        if turn in (10, 100):
            work["bounded"][turn] = replayed_events(monkeypatch, bounded, conversation.tracker, domain)
            work["rule"][turn] = replayed_events(monkeypatch, reference, conversation.tracker, domain)
        conversation.respond()

    assert work["bounded"][10] == work["bounded"][100]
    assert work["rule"][100] > 5 * work["rule"][10]  # what the bounded policy avoids
    assert work["bounded"][100] < work["rule"][10]


def test_tied_longest_rules_are_decided_on_the_whole_history(
    project: Tuple[Domain, List], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RulePolicy picks `max(keys, key=len)`; between keys of equal length the winner
    # depends on set order, which depends on how many states were filtered.
    domain, trackers = project
    reference, bounded = train_both(domain, trackers, tmp_path)
    question = {"prev_action": {"action_name": "action_listen"}, "user": {"intent": "faq"}}
    tied = {  # same length, both match "thanks, then a question" (an empty sub-state matches anything)
        json.dumps([{"prev_action": {"action_name": "utter_thank"}, padding: {}}, question], sort_keys=True): action
        for padding, action in (("x", "utter_greet"), ("y", "utter_goodbye"))
    }
    for policy in (reference, bounded):
        policy.lookup[RULES].update(tied)
    conversation, checked = chat(domain, (reference, bounded))
    play(conversation, 4, turns=60)
    conversation.say("thank")
    conversation.tracker.update(UserUttered("/faq", {"name": "faq", "confidence": 0.9}), domain)

    assert_same_prediction(conversation.tracker, domain, reference, bounded)
    predicted = reference.predict_action_probabilities(conversation.tracker, domain)
    assert domain.action_names_or_texts[int(np.argmax(predicted.probabilities))] in ("utter_greet", "utter_goodbye")
    # RulePolicy replays everything twice (text, then intent); the bounded policy
    # replays a short tail for the text (at most: it remembers the tail of a tracker
    # it has seen) and then everything once for the tied intent.
    assert replayed_events(monkeypatch, bounded, conversation.tracker, domain) >= replayed_events(
        monkeypatch, reference, conversation.tracker, domain
    ) / 2


def test_an_unmatched_state_is_marked_rule_only_as_rule_policy_marks_it(
    project: Tuple[Domain, List], tmp_path: Path
) -> None:
    # With no rule matching, RulePolicy describes the prediction by all states and
    # hides the turn if that description is in RULES_NOT_IN_STORIES.
    domain, trackers = project
    reference, bounded = train_both(domain, trackers, tmp_path)
    conversation, _ = chat(domain, (reference, bounded))
    play(conversation, 6, turns=30)
    conversation.tracker.update(UserUttered("/faq", {"name": "faq", "confidence": 0.9}), domain)
    conversation.log(ActionExecuted("utter_greet", policy="followup", confidence=1.0))
    _, description = reference._predict(conversation.tracker, domain)
    assert description not in reference.lookup[RULES]  # no rule for a greeting in reply to a question
    for policy in (reference, bounded):
        policy.lookup[RULES_NOT_IN_STORIES].append(description)

    assert_same_prediction(conversation.tracker, domain, reference, bounded)
    assert reference.predict_action_probabilities(conversation.tracker, domain).hide_rule_turn


# --- Domains the tail cannot serve ---------------------------------------------------

RETURNING_DOMAIN_EXTRA = {
    "slots": {
        "returning_visitor": {
            "type": "bool",
            "influence_conversation": True,
            "mappings": [{"type": "custom"}],
        }
    },
    "responses": {"utter_welcome_back": [{"text": "Welcome back."}]},
}
RETURNING_RULES = {
    "version": "3.1",
    "rules": [
        {
            "rule": "Greet a returning visitor",
            "condition": [{"slot_was_set": [{"returning_visitor": True}]}],
            "steps": [{"intent": "greet"}, {"action": "utter_welcome_back"}],
        }
    ],
}
FORM_DOMAIN_EXTRA = {
    "intents": ["leave_details"],
    "slots": {"contact_detail": {"type": "text", "influence_conversation": False, "mappings": [{"type": "from_text"}]}},
    "forms": {"contact_form": {"required_slots": ["contact_detail"]}},
    "responses": {"utter_ask_contact_detail_form": [{"text": "How can we reach you?"}]},
}
FORM_RULES = {
    "version": "3.1",
    "rules": [
        {
            "rule": "Contact form starts",
            "steps": [{"intent": "leave_details"}, {"action": "contact_form"}, {"active_loop": "contact_form"}],
        },
        {
            "rule": "Contact form ends",
            "condition": [{"active_loop": "contact_form"}],
            "steps": [
                {"action": "contact_form"},
                {"active_loop": None},
                {"slot_was_set": [{"requested_slot": None}]},
                {"action": "utter_contact_saved"},
            ],
            "wait_for_user_input": False,
        },
    ],
}


def extended_project(tmp_path: Path, domain_extra: Dict[str, Any], rules: Dict[str, Any]) -> Tuple[Domain, List]:
    """The project's domain and data plus a few more slots, forms, responses and rules."""
    domain_yaml = yaml.safe_load((ROOT / "domain.yml").read_text())
    for section, entries in domain_extra.items():
        if isinstance(entries, list):
            domain_yaml[section] = domain_yaml.get(section, []) + entries
        else:
            domain_yaml.setdefault(section, {}).update(entries)
    (tmp_path / "domain.yml").write_text(yaml.safe_dump(domain_yaml, sort_keys=False))
    (tmp_path / "extra_rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    return load_project(tmp_path / "domain.yml", [tmp_path / "extra_rules.yml"])


def test_a_slot_that_influences_the_conversation_makes_it_read_the_whole_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain, trackers = extended_project(tmp_path, RETURNING_DOMAIN_EXTRA, RETURNING_RULES)
    policies = train_both(domain, trackers, tmp_path / "models")
    conversation, checked = chat(domain, policies)
    conversation.log(SlotSet("returning_visitor", True))  # long before the tail a bounded replay would read
    play(conversation, 5, turns=40)
    conversation.say("greet")

    actions = [event.action_name for event in conversation.tracker.events if isinstance(event, ActionExecuted)]
    assert actions[-2] == "utter_welcome_back"  # only true if the slot, set at the start, was seen
    assert checked[0] >= 2 * conversation.turns
    reference, bounded = policies
    assert replayed_events(monkeypatch, bounded, conversation.tracker, domain) == replayed_events(
        monkeypatch, reference, conversation.tracker, domain
    )


def test_a_form_makes_it_read_the_whole_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    domain, trackers = extended_project(tmp_path, FORM_DOMAIN_EXTRA, FORM_RULES)
    policies = train_both(domain, trackers, tmp_path / "models")
    reference, bounded = policies
    conversation, checked = chat(domain, policies)
    for intent, off_script in random_intents(9, turns=30):
        conversation.say(intent, off_script)
    # The form was activated long ago and is still active: every state since says so.
    conversation.log(
        ActionExecuted("contact_form"), ActiveLoop("contact_form"), SlotSet("requested_slot", "contact_detail")
    )
    conversation.log(ActionExecuted(LISTEN))
    for _ in range(20):
        conversation.tracker.update(UserUttered("/faq", {"name": "faq", "confidence": 0.9}), domain)
        assert_same_prediction(conversation.tracker, domain, reference, bounded)
        conversation.log(ActionExecuted("utter_faq"), ActionExecuted(LISTEN))
    assert replayed_events(monkeypatch, bounded, conversation.tracker, domain) == replayed_events(
        monkeypatch, reference, conversation.tracker, domain
    )
    # With the form done the domain still has a form: the policy keeps reading everything.
    conversation.log(ActiveLoop(None))
    for intent, off_script in random_intents(10, turns=10):
        conversation.say(intent, off_script)
    assert checked[0] > 2 * 10


def test_training_replays_rasa_cached_trackers_in_full(
    project: Tuple[Domain, List], policies: Tuple[RulePolicy, RulePolicy]
) -> None:
    domain, trackers = project
    _, bounded = policies
    assert any(isinstance(tracker, TrackerWithCachedStates) for tracker in trackers)
    assert bounded._bounded_reach(trackers[0], domain) is None


def test_registered_like_rule_policy_and_valid_in_a_core_graph() -> None:
    config = yaml.safe_load((ROOT / "config.yml").read_text())
    config["policies"] = [{"name": "bot.policies.bounded_rule_policy.BoundedRulePolicy", **policy_config()}]
    recipe = Recipe.recipe_for_name(config["recipe"])
    model_configuration = recipe.graph_config_for_recipe(config, {}, training_type=TrainingType.CORE)
    validate(model_configuration)
    uses = [node.uses for node in model_configuration.train_schema.nodes.values()]
    assert BoundedRulePolicy in uses


class WordedConversation(Conversation):
    """Every user message has its own words, as real ones do (the intents are the same)."""

    def text_for(self, intent: str) -> str:
        return f"message {self.turns}, meaning {intent}"


def test_remembered_rule_matches_give_the_same_predictions_for_new_words(
    project: Tuple[Domain, List], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain, trackers = project
    reference, bounded = train_both(domain, trackers, tmp_path)
    matched = 0
    original = RulePolicy._get_possible_keys

    def counting(self: RulePolicy, lookup: Dict[str, str], states: List[Any]) -> Any:
        nonlocal matched
        if self is bounded:
            matched += 1
        return original(self, lookup, states)

    monkeypatch.setattr(RulePolicy, "_get_possible_keys", counting)
    conversation, checked = chat(domain, (reference, bounded), WordedConversation)
    play(conversation, seed=11, turns=60)  # every kind of turn, each in new words
    after_each: List[int] = []
    for _ in range(40):  # then question after question, as most conversations go
        conversation.say("faq")
        after_each.append(matched)

    assert checked[0] > 2 * 100
    assert bounded._possible_keys_memo, "nothing was remembered"
    # No two messages had the same words, yet once the recent turns were all questions
    # (the rules look back a few turns) no question needed matching again.
    assert after_each[4] == after_each[-1], after_each


def test_rules_that_name_a_text_keep_texts_apart_in_the_memo(policies: Tuple[RulePolicy, RulePolicy]) -> None:
    _, bounded = policies
    states = [{"prev_action": {"action_name": LISTEN}, "user": {"text": "hello there"}}]
    other = [{"prev_action": {"action_name": LISTEN}, "user": {"text": "something else"}}]
    intent_rules = {json.dumps([{"user": {"intent": "greet"}}]): "utter_greet"}
    text_rules = {json.dumps([{"user": {"text": "hello there"}}]): "utter_greet"}

    assert bounded._memo_key(intent_rules, states) == bounded._memo_key(intent_rules, other)
    assert bounded._memo_key(text_rules, states) != bounded._memo_key(text_rules, other)
    assert bounded._memo_key(intent_rules, [{"user": {"entities": [{"not": "hashable"}]}}]) is None


def test_one_prediction_replays_the_tail_once_for_both_text_and_intent(
    project: Tuple[Domain, List], policies: Tuple[RulePolicy, RulePolicy], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.policies.bounded_rule_policy import _tail_of

    domain, _ = project
    reference, bounded = policies
    conversation = Conversation(domain, reference, check=lambda tracker: None)
    conversation.start_session()
    for _ in range(12):
        conversation.say("faq")
    conversation.tracker.update(UserUttered("a new question", {"name": "faq", "confidence": 0.9}), domain)
    tail = _tail_of(conversation.tracker, bounded._rule_reach().max_states)
    assert tail is not None

    # Matching on the text finds no rule, so RulePolicy matches on the intent too:
    # both sets of states come from one replay of the tail into a tracker plus one
    # replay by Rasa's `past_states` (each set computed afresh would double this).
    assert replayed_events(monkeypatch, bounded, conversation.tracker, domain) == 2 * len(tail.events)

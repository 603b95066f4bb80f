"""RulePolicy that reads only the end of a conversation: the same predictions at a cost that stays flat.

Rasa 3.6's RulePolicy turns the whole conversation into dialogue states twice per
prediction (`tracker.past_states` replays every event since the start), and then
checks every rule against every one of those states. A rule can only look back as
far as its own length, though: past that, `RulePolicy._is_rule_applicable` accepts
any state unseen. `BoundedRulePolicy` replays only the last few turns, enough for the
longest rule and a margin, and hands RulePolicy's own matching code those states.

Where the last few turns could give other states than the whole history, it lets
RulePolicy read everything: slots that influence the conversation, forms and other
loops, a revert that reaches back past the replayed events, rules of equal length
that both match (RulePolicy's choice between them depends on the length of the
history), and an unmatched state whose description could be one that RulePolicy
marks as a rule-only turn. None of these occur in this project's domain and rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Set, Text, Tuple, Type

from rasa.core.featurizers.tracker_featurizers import TrackerFeaturizer
from rasa.core.policies.rule_policy import (
    RULES,
    RULES_FOR_LOOP_UNHAPPY_PATH,
    RULES_NOT_IN_STORIES,
    RulePolicy,
)
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import (
    ACTION_TWO_STAGE_FALLBACK_NAME,
    ACTIVE_LOOP,
    LOOP_NAME,
    SHOULD_NOT_BE_SET,
    USER,
)
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    ActiveLoop,
    Event,
    Restarted,
    SessionStarted,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import AnySlotDict, DialogueStateTracker
from rasa.shared.nlu.constants import TEXT

# States kept beyond the longest rule. One would do (at a turn index equal to a
# rule's length RulePolicy stops checking that rule); two keep a safety margin.
HISTORY_MARGIN = 2

# Remembered rule matches: distinct lists of recent states, and the longest list
# worth remembering (the bounded window is a handful of states).
MEMO_SIZE = 4096
MEMO_MAX_STATES = 16
_MASKED_TEXT = "<any text>"

# Loop actions that exist without being declared in the domain.
DEFAULT_LOOP_ACTIONS = frozenset({ACTION_TWO_STAGE_FALLBACK_NAME})


class _WholeHistoryNeeded(Exception):
    """The rules matched on the last states, but RulePolicy's answer also depends on the older ones."""


@dataclass(frozen=True)
class _RuleReach:
    """How far back the trained rules look, and which loops they mention."""

    max_states: int
    loop_names: FrozenSet[Text]


@dataclass(frozen=True)
class _Tail:
    """The last events of a conversation, replayed instead of all of them."""

    events: List[Event]
    # False when the tail starts right after a Restarted or SessionStarted event: it
    # then holds every event RulePolicy would replay, and all its states are exact.
    cuts_history: bool


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class BoundedRulePolicy(RulePolicy):
    """Predicts exactly what RulePolicy predicts, replaying only the last few dialogue turns.

    Trains, persists and loads like RulePolicy (same config, same files). Only the
    states built for a prediction change: the tail of the conversation instead of
    all of it, when that provably gives the same answer.
    """

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Optional[TrackerFeaturizer] = None,
        lookup: Optional[Dict] = None,
    ) -> None:
        """Initializes the policy (see RulePolicy)."""
        super().__init__(config, model_storage, resource, execution_context, featurizer, lookup)
        # Per-call flags: Rasa calls a policy's predict synchronously, one call at a time.
        self._whole_history_only = False
        self._states_cut = False
        self._reach_cache: Optional[Tuple[Any, Any, Tuple[int, int], _RuleReach]] = None
        self._cut_descriptions_cache: Optional[Tuple[Any, int, int, FrozenSet[Text]]] = None
        self._possible_keys_memo: Dict[Tuple[Any, ...], Set[Text]] = {}
        self._last_tail: Optional[Tuple[Tuple[int, int], Optional[Event], DialogueStateTracker]] = None
        self._text_in_rules: Dict[int, Tuple[Dict[Text, Text], bool]] = {}

    def _find_action_from_rules(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        use_text_for_last_user_input: bool,
    ) -> Tuple[Optional[Text], Optional[Text], bool]:
        """RulePolicy's rule matching, on the last states where that gives the same result."""
        self._states_cut = False
        try:
            predicted, source, returning_from_unhappy_path = super()._find_action_from_rules(
                tracker, domain, use_text_for_last_user_input
            )
        except _WholeHistoryNeeded:
            return self._find_action_from_whole_history(tracker, domain, use_text_for_last_user_input)

        # Besides matching rules, RulePolicy uses the states in two places. Its debug
        # log ("rule_policy.actions.find") shows them: it now shows the last ones. And
        # with no matching rule they only describe the prediction (`_create_feature_key`):
        # a description of the last states is as good as one of all of them, except
        # that a description in RULES_NOT_IN_STORIES marks the turn as rule-only
        # (`hide_rule_turn`). That matters for intent-based predictions only
        # (`RulePolicy._predict`), so those whose shorter description could mark the
        # turn differently are redone on the whole history.
        if (
            self._states_cut
            and predicted is None
            and not use_text_for_last_user_input
            and source in self._cut_rule_only_descriptions()
        ):
            return self._find_action_from_whole_history(tracker, domain, use_text_for_last_user_input)
        return predicted, source, returning_from_unhappy_path

    def _find_action_from_whole_history(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        use_text_for_last_user_input: bool,
    ) -> Tuple[Optional[Text], Optional[Text], bool]:
        """RulePolicy's rule matching on every state of the conversation."""
        self._whole_history_only = True
        try:
            return super()._find_action_from_rules(tracker, domain, use_text_for_last_user_input)
        finally:
            self._whole_history_only = False

    def _prediction_states(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        use_text_for_last_user_input: bool = False,
        rule_only_data: Optional[Dict[Text, Any]] = None,
    ) -> List[State]:
        """The states RulePolicy would build, or the last of them where only those can matter."""
        self._states_cut = False
        reach = self._bounded_reach(tracker, domain)
        tail = _tail_of(tracker, reach.max_states) if reach else None
        if reach is None or tail is None:
            return super()._prediction_states(tracker, domain, use_text_for_last_user_input, rule_only_data)

        tail_tracker = self._tail_tracker(tracker, tail)
        states = super()._prediction_states(tail_tracker, domain, use_text_for_last_user_input, rule_only_data)
        if not tail.cuts_history:
            return states
        # The tail's first states lack the older turns (the very first one looks like
        # a conversation start); `_tail_of` made sure they lie before the last
        # `max_states`, which are the whole history's.
        self._states_cut = True
        return states[-reach.max_states :]

    def _tail_tracker(self, tracker: DialogueStateTracker, tail: _Tail) -> DialogueStateTracker:
        """The tail replayed into a tracker, once per tracker as it is now.

        RulePolicy builds the states twice for one prediction (matching on the
        text of the last message, then on its intent); the replay and the states
        are shared by both, as long as the tracker has not changed.
        """
        last = tracker.events[-1] if tracker.events else None
        key = (id(tracker), len(tracker.events))
        cached = self._last_tail
        if cached is not None and cached[0] == key and cached[1] is last:
            return cached[2]
        # The tracker's initial slots, as RulePolicy's own replay starts from them.
        tail_tracker = tracker.init_copy()
        for event in tail.events:
            tail_tracker.update(event)
        _remember_past_states(tail_tracker)
        # Holding `last` keeps its id from being reused by another event.
        self._last_tail = (key, last, tail_tracker)
        return tail_tracker

    def _get_possible_keys(self, lookup: Dict[Text, Text], states: List[State]) -> Set[Text]:
        """RulePolicy's matching rule keys; refuses a tie that the whole history would break.

        Remembered per distinct list of states (recent turns repeat a lot): the
        matching reads nothing else, and the same set, built the same way, is
        returned, so even `max` over it picks the same key.
        """
        memo_key = self._memo_key(lookup, states)
        keys = self._possible_keys_memo.get(memo_key) if memo_key is not None else None
        if keys is None:
            keys = super()._get_possible_keys(lookup, states)
            if memo_key is not None:
                if len(self._possible_keys_memo) >= MEMO_SIZE:
                    self._possible_keys_memo.clear()
                self._possible_keys_memo[memo_key] = keys
        # RulePolicy takes `max(keys, key=len)`. With several longest keys the winner
        # depends on the set's iteration order, which depends on how many states
        # (all of them, in RulePolicy) the set was rebuilt for.
        if self._states_cut and lookup is self.lookup.get(RULES) and _longest_is_tied(keys):
            raise _WholeHistoryNeeded()
        return keys

    def _memo_key(self, lookup: Dict[Text, Text], states: List[State]) -> Optional[Tuple[Any, ...]]:
        """What rule matching depends on, as a dictionary key; None where it is not worth remembering.

        A rule compares only the features it names. If no rule names the text of a
        user message (no end-to-end rules), the text's value cannot change which
        rules match, so all texts share one key.
        """
        if len(states) > MEMO_MAX_STATES:
            return None  # the whole history: long, and unlikely to recur
        names_text = self._text_in_rules.get(id(lookup))
        if names_text is None or names_text[0] is not lookup:
            names_text = (lookup, _rules_name_user_text(self, lookup))
            self._text_in_rules[id(lookup)] = names_text
        try:
            frozen = tuple(_frozen_state(state, mask_text=not names_text[1]) for state in states)
        except TypeError:
            return None  # a value that cannot be a key: match without remembering
        return (id(lookup), len(lookup), frozen)

    def _bounded_reach(self, tracker: DialogueStateTracker, domain: Domain) -> Optional[_RuleReach]:
        """How many last states to build, or None where older events can change them."""
        if self._whole_history_only or isinstance(tracker, TrackerWithCachedStates):
            # Training (contradiction checks) replays cached states: keep it RulePolicy's.
            return None
        if domain.form_names or tracker.active_loop is not None or _has_featurized_slot(tracker):
            return None
        reach = self._rule_reach()
        if reach.loop_names:
            return None
        return reach

    def _rule_reach(self) -> _RuleReach:
        """The longest rule (in states) plus the margin, and the loops the rules mention."""
        rules = self.lookup.get(RULES, {})
        unhappy = self.lookup.get(RULES_FOR_LOOP_UNHAPPY_PATH, {})
        sizes = (len(rules), len(unhappy))
        cached = self._reach_cache
        if cached is not None and cached[0] is rules and cached[1] is unhappy and cached[2] == sizes:
            return cached[3]
        rule_states = [self._rule_key_to_state(key) for key in [*rules, *unhappy]]
        loop_names = frozenset(
            state[ACTIVE_LOOP][LOOP_NAME]
            for states in rule_states
            for state in states
            if state.get(ACTIVE_LOOP, {}).get(LOOP_NAME) not in (None, SHOULD_NOT_BE_SET)
        )
        reach = _RuleReach(max((len(states) for states in rule_states), default=0) + HISTORY_MARGIN, loop_names)
        self._reach_cache = (rules, unhappy, sizes, reach)
        return reach

    def _cut_rule_only_descriptions(self) -> FrozenSet[Text]:
        """Descriptions of cut states that a whole-history description in RULES_NOT_IN_STORIES could end with."""
        rule_only = self.lookup.get(RULES_NOT_IN_STORIES, [])
        kept = self._rule_reach().max_states
        cached = self._cut_descriptions_cache
        if cached is not None and cached[0] is rule_only and cached[1:3] == (len(rule_only), kept):
            return cached[3]
        descriptions = set()
        for source in rule_only:
            states = _json_states(source)
            if states is not None and len(states) >= kept:
                descriptions.add(json.dumps(states[-kept:], sort_keys=True))
        frozen = frozenset(descriptions)
        self._cut_descriptions_cache = (rule_only, len(rule_only), kept, frozen)
        return frozen


def _has_featurized_slot(tracker: DialogueStateTracker) -> bool:
    """True if a slot value can appear in the states (set long ago, it would be missed)."""
    if isinstance(tracker.slots, AnySlotDict):
        return False  # AnySlots cannot be featurized
    return any(slot.influence_conversation for slot in tracker.slots.values())


def _tail_of(tracker: DialogueStateTracker, wanted_states: int) -> Optional[_Tail]:
    """The last events whose replay gives the tracker's last `wanted_states` states.

    None where the tail would be the whole conversation (RulePolicy's own replay is
    then just as cheap) or where a loop could make it differ.
    """
    wanted_actions = wanted_states + 1
    while True:
        tail: List[Event] = []
        actions = 0
        starts_after_reset = False
        for event in reversed(tracker.events):
            if isinstance(event, (Restarted, SessionStarted)):
                # RulePolicy replays nothing before these (`applied_events`).
                starts_after_reset = True
                break
            tail.append(event)
            if isinstance(event, ActionExecuted):
                actions += 1
                # Start at an action followed by a user message: every later state is exact.
                follows_user = len(tail) > 1 and isinstance(tail[-2], UserUttered)
                if actions >= 2 * wanted_actions or (actions >= wanted_actions and follows_user):
                    break
        else:
            return None
        tail.reverse()
        if _touches_loop(tail):
            return None
        if starts_after_reset:
            return _Tail(tail, cuts_history=False)
        applied = _without_reverted(tail)
        if applied is not None and _exact_state_count(applied) >= wanted_states:
            return _Tail(tail, cuts_history=True)
        # A revert reached past the tail, or reverts left too few turns: look further back.
        wanted_actions *= 2


def _touches_loop(events: List[Event]) -> bool:
    """True if a loop (de)activation or a loop action is among the events.

    `applied_events` treats a loop action's repeated runs specially, based on loop
    events anywhere in the conversation; the tail cannot see those.
    """
    return any(
        isinstance(event, ActiveLoop)
        or (isinstance(event, ActionExecuted) and event.action_name in DEFAULT_LOOP_ACTIONS)
        for event in events
    )


def _without_reverted(events: List[Event]) -> Optional[List[Event]]:
    """The events left after reverts, as `DialogueStateTracker.applied_events` does it.

    None if a revert undoes more than the given events: it reaches into older ones.
    """
    applied: List[Event] = []
    for event in events:
        if isinstance(event, ActionReverted):
            undone = _undo_till(ActionExecuted, applied)
        elif isinstance(event, UserUtteranceReverted):
            undone = _undo_till(UserUttered, applied) and _undo_till(ActionExecuted, applied)
        else:
            applied.append(event)
            continue
        if not undone:
            return None
    return applied


def _undo_till(event_type: Type[Event], applied: List[Event]) -> bool:
    """Removes events up to and including the last `event_type`; False if there was none."""
    while applied:
        if isinstance(applied.pop(), event_type):
            return True
    return False


def _exact_state_count(applied: List[Event]) -> int:
    """How many of the last states replayed from these events equal the whole history's.

    A state holds the previous action, the latest user message (with the entity and
    featurization events after it, which apply only after an `action_listen`) and, in
    domains this policy bounds, nothing else. It is exact once the replay has seen an
    action and, after it, a user message.
    """
    states = 0  # one state before each action, one at the end
    first_exact: Optional[int] = None
    seen_action = anchored = False
    for event in applied:
        if isinstance(event, ActionExecuted):
            if anchored and first_exact is None:
                first_exact = states
            states += 1
            seen_action = True
        elif isinstance(event, UserUttered) and seen_action:
            anchored = True
    if first_exact is None:
        return 1 if anchored else 0
    return states + 1 - first_exact


def _remember_past_states(tracker: DialogueStateTracker) -> None:
    """Make `tracker.past_states` compute once per set of arguments, then hand out copies.

    Only for trackers this policy builds and never changes afterwards. The
    featurizer edits the last state it gets (it drops the text or the intent),
    so every caller gets its own copy of the states' dictionaries.
    """
    compute = tracker.past_states
    computed: Dict[Tuple[Any, ...], List[State]] = {}

    def past_states(
        domain: Domain,
        omit_unset_slots: bool = False,
        ignore_rule_only_turns: bool = False,
        rule_only_data: Optional[Dict[Text, Any]] = None,
    ) -> List[State]:
        key = (
            id(domain),
            omit_unset_slots,
            ignore_rule_only_turns,
            json.dumps(rule_only_data, sort_keys=True, default=str),
        )
        states = computed.get(key)
        if states is None:
            states = compute(domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
            computed[key] = states
        return [{name: dict(sub_state) for name, sub_state in state.items()} for state in states]

    tracker.past_states = past_states  # type: ignore[method-assign]


def _rules_name_user_text(policy: RulePolicy, lookup: Dict[Text, Text]) -> bool:
    """True if a rule in `lookup` requires a user message's text (an end-to-end rule)."""
    return any(TEXT in state.get(USER, {}) for key in lookup for state in policy._rule_key_to_state(key))


def _frozen_state(state: State, mask_text: bool) -> Tuple[Any, ...]:
    """A state as nested sorted tuples (hashable); the user's text replaced by a placeholder if `mask_text`."""
    parts = []
    for name, sub_state in state.items():
        items = []
        for key, value in sub_state.items():
            if mask_text and name == USER and key == TEXT:
                value = _MASKED_TEXT
            elif isinstance(value, list):
                value = tuple(value)
            hash(value)  # TypeError for values that cannot be part of a key
            items.append((key, value))
        parts.append((name, tuple(sorted(items))))
    return tuple(sorted(parts))


def _longest_is_tied(keys: Set[Text]) -> bool:
    """True if more than one key has the greatest length."""
    longest = max((len(key) for key in keys), default=0)
    return sum(1 for key in keys if len(key) == longest) > 1


def _json_states(source: Any) -> Optional[List[State]]:
    """The states of a rule description, or None for other sources (default actions, loops)."""
    if not isinstance(source, str) or not source.startswith("["):
        return None
    try:
        states = json.loads(source)
    except ValueError:
        return None
    return states if isinstance(states, list) else None

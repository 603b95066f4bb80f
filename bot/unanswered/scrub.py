"""Removes personal data from a message before it is kept: emails, phone numbers, links, names.

No named-entity model is available offline, so names are found with a heuristic
that errs towards removing too much:

- the word(s) after "my name is", "my name's", "I'm called", "I am called",
  "call me" (unless the next word is a common word: "call me back");
- the word(s) after a title abbreviation: Dr, Mr, Mrs, Ms, Mx, Prof;
- a capitalised word that does not start a sentence and is not a known word
  (a common English word, or a domain term such as MDMA, PTSD, FDA, Australia:
  see `DOMAIN_TERMS`); acronyms (2 to 5 capitals, like EMDR or SSRIs) are kept;
- a capitalised, unknown word that starts a sentence when a name follows it
  ("Sarah Jones asked ...") or a word like "here", "said" or "told" does
  ("Sarah here", "Mike told me ...").

Known limits: a name written in lower case mid-sentence ("my friend sarah") or
a first name alone at the start of a sentence ("Sarah, is it legal?") is not found,
and a capitalised word we do not know mid-sentence ("what about Kratom") is
removed. Emails and phone numbers use the project's definition in
`bot.contact`; links and @handles are removed too because they often carry names.
"""

from __future__ import annotations

import re
from typing import FrozenSet, List, Optional, Set

from spacy.lang.en.stop_words import STOP_WORDS

from bot.contact import contact_details

EMAIL_PLACEHOLDER = "[EMAIL]"
PHONE_PLACEHOLDER = "[PHONE]"
NAME_PLACEHOLDER = "[NAME]"
LINK_PLACEHOLDER = "[LINK]"
PLACEHOLDERS = (EMAIL_PLACEHOLDER, PHONE_PLACEHOLDER, NAME_PLACEHOLDER, LINK_PLACEHOLDER)
MAX_TEXT_LENGTH = 500

_CONTACT_PLACEHOLDERS = {"email": EMAIL_PLACEHOLDER, "phone": PHONE_PLACEHOLDER}

# Capitalised words that are not names of people. Matched case-insensitively.
DOMAIN_TERMS: FrozenSet[str] = frozenset(
    """
    mdma ptsd cptsd ecstasy molly psilocybin ketamine esketamine lsd ayahuasca ibogaine
    cannabis marijuana alcohol ssri ssris snri snris maoi maois sertraline paroxetine
    zoloft paxil prozac lexapro wellbutrin emdr cbt cpt dbt adhd ocd tbi bpd covid
    fda dea maps mapp lykos nih nida nimh samhsa va who ema tga mhra nhs cdc
    medicare medicaid tricare congress senate
    us usa u.s america american americans united states kingdom uk britain british england
    english scotland wales ireland irish europe european eu australia australian australians
    canada canadian germany german france french netherlands dutch switzerland swiss
    israel israeli new zealand spain spanish italy portugal mexico brazil india japan
    china africa asia california texas colorado oregon washington york london
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday christmas
    therapy therapies therapist therapists therapeutic assisted psychotherapy treatment
    treatments trial trials phase study studies research breakthrough designation
    approval approved schedule drug drugs medicine medication psychedelic psychedelics
    clinic clinical doctor doctors psychiatrist psychiatrists veteran veterans affairs
    administration food department health mental disorder post traumatic trauma stress
    complex association institute national federal government law legal safe safety
    side effects risks risk symptoms session sessions integration preparation
    god bot ai chatgpt google internet reddit youtube faq dr mr mrs ms mx prof
    """.split()
)

# Everyday words that often start a sentence, beyond spaCy's English stop words.
COMMON_WORDS: FrozenSet[str] = frozenset(
    """
    i'm i've i'd i'll im ive ok okay hi hello hey thanks thank yes yeah yep nope sorry dear
    ask tell help explain find send talk speak contact need want wondering wonder know like
    love hope looking trying tried try read heard saw seen met meet went going got let feel
    feeling think thought said says told question questions answer info information maybe
    also friend friends family partner husband wife mother mum mom father dad son daughter
    brother sister people person someone anybody everybody nobody
    """.split()
)

# Common words are never names, whatever their case ("Can", "Will", "Please").
KNOWN_WORDS: FrozenSet[str] = frozenset(STOP_WORDS) | COMMON_WORDS | DOMAIN_TERMS

_TITLES = frozenset({"dr", "mr", "mrs", "ms", "mx", "prof"})
# "Sarah said ...": a capitalised unknown word before these starts with a name.
_NAME_FOLLOWERS = frozenset(
    {
        "here", "speaking", "said", "says", "told", "tells", "thinks", "thought", "asked", "asks",
        "suggested", "suggests", "recommended", "recommends", "mentioned", "mentions", "wants", "wanted",
    }
)
_NAME_CUE = re.compile(
    r"\b(?:my\s+name\s+is|my\s+name's|my\s+name’s|i\s+am\s+called|i'm\s+called|i’m\s+called|"
    r"im\s+called|call\s+me)\s+$",
    re.IGNORECASE,
)
_CUE_WINDOW = 30
_LINK = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@])@\w{2,}")
_WORD = re.compile(r"\[(?:EMAIL|PHONE|NAME|LINK)\]|[^\W\d_]+(?:['’][^\W\d_]+)*")
_ACRONYM = re.compile(r"[A-Z]{2,5}s?")
_SENTENCE_END = re.compile(r"[.!?:\n]")
_REPEATED_NAME = re.compile(re.escape(NAME_PLACEHOLDER) + r"(?:[\s-]+" + re.escape(NAME_PLACEHOLDER) + r")+")
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)


def scrub_personal_data(text: str) -> str:
    """The text with links, emails, phone numbers and names of people replaced by placeholders.

    Whitespace is collapsed to single spaces and the result is cut to
    `MAX_TEXT_LENGTH` characters (after scrubbing, so nothing is cut in half).
    """
    text = _CONTROL.sub(" ", text)
    text = _LINK.sub(LINK_PLACEHOLDER, text)
    text = _replace_contact_details(text)
    text = _HANDLE.sub(NAME_PLACEHOLDER, text)
    text = _replace_names(text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > MAX_TEXT_LENGTH:
        text = text[: MAX_TEXT_LENGTH - 1].rstrip() + "…"
    return text


def has_words(text: str) -> bool:
    """Whether anything but placeholders, digits and punctuation is left."""
    return any(not _is_placeholder(m.group(0)) for m in _WORD.finditer(text))


def _replace_contact_details(text: str) -> str:
    parts: List[str] = []
    position = 0
    for detail in contact_details(text):
        parts.append(text[position : detail.start])
        parts.append(_CONTACT_PLACEHOLDERS[detail.method])
        position = detail.end
    parts.append(text[position:])
    return "".join(parts)


def _is_placeholder(word: str) -> bool:
    return word in PLACEHOLDERS


def _base(word: str) -> str:
    """Lower case, without a possessive or contraction ("Sarah's" -> "sarah")."""
    lowered = word.lower().replace("’", "'")
    return lowered if lowered in KNOWN_WORDS else lowered.split("'")[0]


def _is_known(word: str) -> bool:
    return _base(word) in KNOWN_WORDS or bool(_ACRONYM.fullmatch(word))


def _is_capitalised(word: str) -> bool:
    return word[0].isupper()


class _Words:
    """The words of a text with what the name rules need to know about each."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.matches = list(_WORD.finditer(text))

    def __len__(self) -> int:
        return len(self.matches)

    def word(self, i: int) -> str:
        return self.matches[i].group(0)

    def gap_before(self, i: int) -> str:
        start = self.matches[i - 1].end() if i > 0 else 0
        return self.text[start : self.matches[i].start()]

    def starts_sentence(self, i: int) -> bool:
        if i == 0:
            return True
        if self.word(i - 1).lower() in _TITLES:
            return False  # "Dr. Smith": the dot ends the title, not the sentence
        return bool(_SENTENCE_END.search(self.gap_before(i)))

    def joined_by_space(self, i: int) -> bool:
        """Whether word i follows word i-1 with only spaces between them."""
        return i > 0 and self.gap_before(i).isspace()

    def follows_hyphen(self, i: int) -> bool:
        return i > 0 and self.gap_before(i) == "-"

    def is_candidate(self, i: int) -> bool:
        word = self.word(i)
        return not _is_placeholder(word) and word.lower() not in KNOWN_WORDS


def _name_indices(words: _Words) -> Set[int]:
    names: Set[int] = set()
    for i in range(len(words)):
        if _after_cue(words, i) or _after_title(words, i):
            names.add(i)
            _add_surname(words, i + 1, names)
        elif _capitalised_unknown(words, i) and not words.starts_sentence(i):
            if not words.follows_hyphen(i) or (i - 1) in names:
                names.add(i)
    for i in range(len(words) - 1):
        if i in names or not words.starts_sentence(i) or not _capitalised_unknown(words, i):
            continue
        if words.joined_by_space(i + 1) and ((i + 1) in names or words.word(i + 1).lower() in _NAME_FOLLOWERS):
            names.add(i)
    return names


def _capitalised_unknown(words: _Words, i: int) -> bool:
    word = words.word(i)
    return not _is_placeholder(word) and _is_capitalised(word) and not _is_known(word)


def _after_cue(words: _Words, i: int) -> bool:
    if not words.is_candidate(i):
        return False
    start = words.matches[i].start()
    # The search may look back before `pos`, so the cue's word boundary is real.
    return bool(_NAME_CUE.search(words.text, max(0, start - _CUE_WINDOW), start))


def _after_title(words: _Words, i: int) -> bool:
    if i == 0 or words.word(i - 1).lower() not in _TITLES:
        return False
    return words.is_candidate(i) and words.gap_before(i).strip() in ("", ".")


def _add_surname(words: _Words, i: int, names: Set[int]) -> None:
    if i < len(words) and words.joined_by_space(i) and _capitalised_unknown(words, i):
        names.add(i)


def _replace_names(text: str) -> str:
    words = _Words(text)
    names = _name_indices(words)
    if not names:
        return text
    parts: List[str] = []
    position = 0
    for i in sorted(names):
        match = words.matches[i]
        possessive: Optional[re.Match[str]] = _POSSESSIVE.search(match.group(0))
        parts.append(text[position : match.start()])
        parts.append(NAME_PLACEHOLDER + (possessive.group(0) if possessive else ""))
        position = match.end()
    parts.append(text[position:])
    return _REPEATED_NAME.sub(NAME_PLACEHOLDER, "".join(parts))

"""Matching words in the free text of a case (diagnoses, symptoms, the history at the site).

:func:`matches` finds a term at a word start; it is for names (medications, routes, agents).
:func:`affirmed` is for statements a person wrote about the patient: a term that a negation
governs (``no Raynaud phenomenon``, ``systemic sclerosis excluded``, ``without pain``) does not
count. The negation cues and their scope follow NegEx (Chapman WW et al., A simple algorithm
for identifying negated findings and diseases in discharge summaries, J Biomed Inform
2001;34:301-10): a cue before the term, at most :data:`NEGATION_WINDOW_WORDS` words ahead of it,
or one after it, at most :data:`POST_WINDOW_WORDS` words on ("negative" and "free" only right
after it), within the same clause; pseudo-negations ("no improvement of") negate nothing. This is a heuristic: a negation it misses
leaves the term counted, as before.
"""

from __future__ import annotations

import re

#: Words a negation cue may stand before the term it negates (NegEx uses five).
NEGATION_WINDOW_WORDS = 5
#: Words that may stand between a term and a cue after it ("phenomenon was" in "Raynaud
#: phenomenon was excluded").
POST_WINDOW_WORDS = 2
#: Cues that negate what follows them ("no calcinosis", "negative for anti-Scl-70").
_PRE_CUES = (
    "no", "not", "without", "denies", "denied", "negative for", "free of", "absence of",
    "no evidence of", "no sign of", "no signs of", "rules out", "ruled out", "never", "none",
)  # fmt: skip
#: Phrases that hold a cue but negate nothing after them (NegEx's pseudo-negations): "no
#: improvement of pain", "not only Raynaud".
_PSEUDO_CUES = (
    "no change", "no improvement", "no increase", "no further", "no relief", "no response",
    "not only", "not improved", "not relieved", "not responding", "not controlled",
)  # fmt: skip
#: Cues that negate what precedes them ("systemic sclerosis excluded"), up to
#: POST_WINDOW_WORDS words after the term ...
_POST_CUES = ("excluded", "ruled out", "absent", "unlikely")
#: ... and cues that do so only right after it ("pain-free", "Raynaud negative"): "SSc antibody
#: negative" says nothing against the SSc.
_POST_ADJACENT_CUES = ("negative", "free")
#: Ends of a negation's scope: punctuation that closes a clause, and "but".
_CLAUSE_END = re.compile(r"[.,;:!?()\[\]]|\bbut\b|\bhowever\b")
_PRE = re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(c) for c in _PRE_CUES) + r")(?![a-z0-9])")
_PSEUDO = re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(c) for c in _PSEUDO_CUES) + r")(?![a-z0-9])")
_POST = re.compile(r"^[\s-]*(?:" + "|".join(re.escape(c) for c in _POST_CUES) + r")(?![a-z0-9])")
_POST_ADJACENT = re.compile(
    r"^[\s-]*(?:" + "|".join(re.escape(c) for c in _POST_ADJACENT_CUES) + r")(?![a-z0-9])"
)


def _term_pattern(term: str) -> re.Pattern[str]:
    # Short terms ("sc", "im", "sle") must be whole words; longer ones may be word stems.
    end = r"(?![a-z0-9])" if len(term) <= 4 else ""
    return re.compile(r"(?<![a-z0-9])" + re.escape(term.lower()) + end)


def matches(text: str, terms: tuple[str, ...]) -> bool:
    """Whether any term occurs in ``text`` at a word start (case-insensitive)."""
    lowered = text.lower()
    return any(_term_pattern(term).search(lowered) for term in terms)


def affirmed(text: str, terms: tuple[str, ...], exceptions: tuple[str, ...] = ()) -> bool:
    """Whether any term occurs in ``text`` at a word start and no negation governs it.

    ``exceptions`` are phrases whose words are not the term's sense (``lupus anticoagulant`` is
    not lupus, the ``iliac crest`` not CREST): they are blanked out before matching.
    """
    lowered = text.lower()
    for phrase in exceptions:
        lowered = _term_pattern(phrase).sub(lambda m: " " * len(m.group()), lowered)
    for term in terms:
        for hit in _term_pattern(term).finditer(lowered):
            if not _negated(lowered, hit.start(), hit.end()):
                return True
    return False


def negated(text: str, terms: tuple[str, ...]) -> bool:
    """Whether ``text`` names a term only under a negation (``no Raynaud phenomenon``)."""
    lowered = text.lower()
    hits = [h for term in terms for h in _term_pattern(term).finditer(lowered)]
    return bool(hits) and all(_negated(lowered, h.start(), h.end()) for h in hits)


def negated_statement(text: str) -> bool:
    """Whether a short statement as a whole is negated: it opens with a negation cue and is one
    clause (``no injections``, ``none known``, ``never injected``), so it says nothing was there."""
    lowered = text.strip().lower()
    return bool(_PRE.match(lowered)) and not _CLAUSE_END.search(lowered)


def _negated(lowered: str, start: int, end: int) -> bool:
    before = _CLAUSE_END.split(lowered[:start])[-1]
    window = " ".join(before.split()[-NEGATION_WINDOW_WORDS:])
    window = _PSEUDO.sub(" ", window)
    if _PRE.search(window):
        return True
    # After the term: the rest of its word ("sclerosis" of the stem "scler"), then a cue within
    # the next POST_WINDOW_WORDS words of the clause ("Raynaud phenomenon was excluded").
    after = re.sub(r"^[a-z0-9]*", "", _CLAUSE_END.split(lowered[end:])[0])
    if _POST_ADJACENT.search(after):
        return True
    words = after.replace("-", " - ").split()
    return any(_POST.search(" ".join(words[k:])) for k in range(min(len(words), POST_WINDOW_WORDS + 1)))

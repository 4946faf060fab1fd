"""Text while someone is still talking: the words two consecutive decodes agree on.

The growing utterance is re-decoded about once a second. A word is sent once two
consecutive decodes begin with the same words up to and including it; deltas are
append-only, so nothing sent is taken back. The final decode then sends what it adds.
"""

from __future__ import annotations

import difflib
import re

_NOT_WORD = re.compile(r"[^\w']+")


def _plain(word: str) -> str:
    """A word without case or punctuation ("Potatoes," and "potatoes" are the same word)."""
    return _NOT_WORD.sub("", word.lower())


def agreed_words(previous: list[str], current: list[str]) -> list[str]:
    """The words both decodes begin with (compared as sent, punctuation included)."""
    agreed = []
    for before, now in zip(previous, current, strict=False):
        if before != now:
            break
        agreed.append(now)
    return agreed


class PartialText:
    """What one utterance has sent so far, and the decode the next one is compared with."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._last: list[str] | None = None
        self.decodes = 0

    @property
    def text(self) -> str:
        return " ".join(self.sent)

    def update(self, decode: str) -> str:
        """Take one more partial decode; the delta to send ("" if nothing new is agreed)."""
        words = decode.split()
        self.decodes += 1
        previous, self._last = self._last, words
        if previous is None:
            return ""
        agreed = agreed_words(previous, words)
        if len(agreed) <= len(self.sent) or agreed[: len(self.sent)] != self.sent:
            return ""  # nothing new, or the decodes now disagree with what was sent
        return self._extend(agreed[len(self.sent) :])

    def final(self, transcript: str) -> tuple[str, bool]:
        """The delta that completes ``transcript``, and whether the deltas add up to it.

        They do unless the final decode changed a word already sent (often only its
        punctuation: "potatoes" then "potatoes,"). Deltas cannot be taken back, so then the
        words the final decode has after those sent are sent, found by aligning the two
        without case and punctuation, and ``completed`` carries the final decode.
        """
        words = transcript.split()
        sent = len(self.sent)
        if words[:sent] == self.sent:
            return self._extend(words[sent:]), True
        matcher = difflib.SequenceMatcher(
            a=[_plain(w) for w in self.sent], b=[_plain(w) for w in words], autojunk=False
        )
        sent_end = final_end = 0
        for block in matcher.get_matching_blocks():
            if block.size:
                sent_end, final_end = block.a + block.size, block.b + block.size
        # Sent words after the last match stand for as many final words.
        rest = min(final_end + sent - sent_end, len(words))
        return self._extend(words[rest:]), False

    def _extend(self, words: list[str]) -> str:
        delta = " ".join(words)
        if self.sent and words:
            delta = " " + delta
        self.sent += words
        return delta

"""Which words of each candidate differ from the others: what the page highlights.

A word is marked when it is not part of an equal run (difflib's longest matching blocks) with the
candidate it is compared to: the model's top candidate, or for the top candidate the second one.
"""

from __future__ import annotations

from difflib import SequenceMatcher


def marked_words(texts: list[str]) -> list[list[tuple[str, bool]]]:
    """Per text, (word, differs) for each of its words."""
    words = [text.split() for text in texts]
    result = []
    for index, own in enumerate(words):
        other = words[1] if index == 0 and len(words) > 1 else words[0]
        same = [False] * len(own)
        if len(words) > 1:
            for block in SequenceMatcher(a=own, b=other, autojunk=False).get_matching_blocks():
                for i in range(block.a, block.a + block.size):
                    same[i] = True
        else:
            same = [True] * len(own)
        result.append([(word, not keep) for word, keep in zip(own, same)])
    return result

"""Count words and summarise their lengths."""

from collections import Counter


def word_count(text: str) -> int:
    """Number of words in `text` (words are separated by whitespace)."""
    return len(text.split(" "))


def average_word_length(text: str) -> float:
    """Mean length of the words in `text`; 0.0 for text without words."""
    words = text.split()
    if not words:
        return 0.0
    return sum(len(w) for w in words) / len(words)


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The `n` most frequent words (lower-cased), most frequent first."""
    return Counter(w.lower() for w in text.split()).most_common(n)

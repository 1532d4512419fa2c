"""Small text statistics helpers."""

from textstats.stats import average_word_length, top_words, word_count

__all__ = ["average_word_length", "top_words", "word_count"]

from textstats import average_word_length, top_words, word_count


def test_word_count_simple():
    assert word_count("the quick brown fox") == 4


def test_word_count_ignores_extra_spaces():
    assert word_count("  the quick   brown fox  ") == 4


def test_average_word_length():
    assert average_word_length("ab abcd") == 3.0


def test_top_words():
    assert top_words("a b a c a b", 2) == [("a", 3), ("b", 2)]

from ..redaction import SeenValues

MASK, REPLACEMENT = "[encrypted]", "(message withheld)"


def seen(*values, limit=100):
    found = SeenValues(limit)
    found.add(values)
    return found


def test_each_whole_value_is_struck_out_the_longest_first():
    values = seen("Amina Yusuf", "Amina", "+254 700 000 901")
    text = "Linked active users: Amina Yusuf (+254 700 000 901); Amina"
    assert (
        values.redact(text, MASK, REPLACEMENT)
        == "Linked active users: [encrypted] ([encrypted]); [encrypted]"
    )


def test_a_value_inside_a_longer_word_is_left():
    assert seen("Li").redact("Linked users: Li", MASK, REPLACEMENT) == "Linked users: [encrypted]"


def test_nothing_seen_or_nothing_found_leaves_the_text():
    assert not SeenValues()
    assert seen("Zawadi").redact("Nothing here", MASK, REPLACEMENT) == "Nothing here"
    assert seen("  ", "").redact("  ", MASK, REPLACEMENT) == "  "
    assert not seen("  ", "")


def test_beyond_the_limit_the_whole_message_is_replaced():
    values = seen(*(f"Person {number}" for number in range(5)), limit=3)
    assert values
    assert values.redact("Person 1 is linked", MASK, REPLACEMENT) == REPLACEMENT
    values.add(["More"])  # nothing kept any more
    assert not values.values
    assert values.redact("", MASK, REPLACEMENT) == ""

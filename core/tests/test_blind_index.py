import hashlib
import hmac

import pytest

from ..blind_index import blind_index, normalize

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.mark.parametrize(
    "value, kind, expected",
    [
        ("  Alice.Doe@Example.ORG \n", "email", "alice.doe@example.org"),
        ("STRASSE@example.org", "email", "strasse@example.org"),
        ("Straße@example.org", "email", "strasse@example.org"),  # casefold, not lower
        ("ｊｏｈｎ@example.org", "email", "john@example.org"),  # full-width letters (NFKC)
        ("+1 (555) 010-0199", "phone", "+15550100199"),
        ("555.010.0199", "phone", "5550100199"),
        (" +63 917-123-4567 ext", "phone", "+639171234567"),
        ("+١٢٣ ٤٥٦", "phone", "+123456"),  # Arabic-Indic digits
        ("1+2", "phone", "12"),  # only a leading '+' is kept
        ("  Maria   DEL\tCarmen \n", "text", "maria del carmen"),
        ("Jose\u0301", "text", "josé"),  # combining accent composes (NFKC)
        ("", "text", ""),
    ],
)
def test_normalize(value, kind, expected):
    assert normalize(value, kind) == expected


def test_normalize_refuses_unknown_kinds_and_non_text():
    with pytest.raises(ValueError, match="unknown blind index kind"):
        normalize("x", "date")
    with pytest.raises(TypeError):
        normalize(None, "text")


def test_blind_index_is_hmac_sha256_of_field_nul_normalized_value():
    expected = hmac.new(KEY, b"email\x00alice@example.org", hashlib.sha256).hexdigest()
    assert blind_index(KEY, "email", " Alice@Example.org ", "email") == expected
    assert len(expected) == 64


@pytest.mark.parametrize(
    "field, first, second, kind",
    [
        ("email", "Alice@Example.org", "  alice@example.ORG", "email"),
        ("phone", "+1 (555) 010-0199", "+1-555-010-0199", "phone"),
        ("name", "Maria  del Carmen", "MARIA DEL CARMEN", "text"),
    ],
)
def test_equal_normalized_values_match(field, first, second, kind):
    assert blind_index(KEY, field, first, kind) == blind_index(KEY, field, second, kind)


def test_different_values_fields_and_keys_differ():
    reference = blind_index(KEY, "email", "alice@example.org", "email")
    assert blind_index(KEY, "email", "alicia@example.org", "email") != reference
    assert blind_index(KEY, "email_secondary", "alice@example.org", "email") != reference
    assert blind_index(OTHER_KEY, "email", "alice@example.org", "email") != reference


def test_field_separator_prevents_ambiguity():
    """("ab", "c") and ("a", "bc") must not hash the same input."""
    assert blind_index(KEY, "ab", "c") != blind_index(KEY, "a", "bc")


def test_the_index_does_not_contain_the_value():
    index = blind_index(KEY, "phone", "+15550100199", "phone")
    assert "5550100199" not in index


@pytest.mark.parametrize("key", [b"", bytes(15), "k" * 32, None])
def test_blind_index_refuses_a_weak_or_missing_key(key):
    with pytest.raises(ValueError):
        blind_index(key, "email", "alice@example.org", "email")


@pytest.mark.parametrize("field", ["", "em\x00ail"])
def test_blind_index_refuses_a_bad_field_name(field):
    with pytest.raises(ValueError):
        blind_index(KEY, field, "x")

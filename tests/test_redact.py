"""Redaction of personal data and secrets (uno_graph.capture.redact).

Secret-looking values are assembled at run time from pieces, so this file holds no literal key that a
secret scanner would flag; they are random, never real credentials.
"""

from __future__ import annotations

import random
import string

import pytest

from uno_graph.capture.redact import KINDS, Finding, Redactor, default_redactor, iban_ok, luhn_ok
from uno_graph.logs import Feedback, LogRecord, parse_record

_rng = random.Random(1234)


def _rand(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


_ALNUM = string.ascii_letters + string.digits
_B64URL = _ALNUM + "_-"


def _mixed(n: int) -> str:
    """n random alphanumerics with at least one digit, upper and lower case letter."""
    return "a7Q" + _rand(_ALNUM, n - 3)


_JWT = ("eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + "." + "eyJ" + "zdWIiOiIxMjM0NTY3ODkwIn0" + "."
        + _rand(_B64URL, 43))
_PEM = ("-----BEGIN " + "RSA PRIVATE KEY-----\n" + _rand(_ALNUM + "+/", 64) + "\n" + _rand(_ALNUM + "+/", 40)
        + "\n-----END " + "RSA PRIVATE KEY-----")

# (kind, text with the value, the value): each value must be gone after redaction.
PLANTED: list[tuple[str, str, str]] = [
    ("EMAIL", "write to {} today", "alice.smith@example.com"),
    ("EMAIL", "cc: {}", "bob+news@mail.example.co.uk"),
    ("EMAIL", "({})", "j_doe-99@sub.domain.org"),
    ("EMAIL", "From {}.", "Mixed.Case@Example.COM"),
    ("PHONE", "call {} now", "+1 (415) 555-2671"),
    ("PHONE", "my number: {}", "415-555-2671"),
    ("PHONE", "office {}", "(415) 555 2671"),
    ("PHONE", "or {}.", "415.555.2671"),
    ("PHONE", "US {}", "+1-415-555-2671"),
    ("PHONE", "London {}", "+44 20 7946 0958"),
    ("PHONE", "London {}", "+44 (0)20 7946 0958"),
    ("PHONE", "UK {}", "020 7946 0958"),
    ("PHONE", "Berlin {}", "+49 30 901820"),
    ("PHONE", "Paris {}", "+33 1 23 45 67 89"),
    ("PHONE", "Paris {}", "01 23 45 67 89"),
    ("PHONE", "India {}", "+91 98765 43210"),
    ("PHONE", "my phone number is {}", "4155552671"),
    ("PHONE", "text me at {} tonight", "555 2671"),
    ("CARD", "card {} exp 12/27", "4111 1111 1111 1111"),
    ("CARD", "card {}", "5500-0000-0000-0004"),
    ("CARD", "amex {}", "378282246310005"),
    ("CARD", "amex {}", "3782 822463 10005"),
    ("CARD", "visa {}", "4012888888881881"),
    ("CARD", "discover {}", "6011 1111 1111 1117"),
    ("CARD", "mc {}", "2223000048400011"),
    ("CARD", "diners {}", "30569309025904"),
    ("CARD", "card {} 12/27 cvv 123", "4111-1111-1111-1111"),
    ("IBAN", "pay to {} please", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "IBAN: {}", "DE89370400440532013000"),
    ("IBAN", "IBAN {} THANKS", "FR14 2004 1010 0505 0001 3M02 606"),
    ("IBAN", "iban {}", "NL91ABNA0417164300"),
    ("IP", "from {} at noon", "192.168.1.10"),
    ("IP", "dns {}", "8.8.8.8"),
    ("IP", "client {}:443", "203.0.113.195"),
    ("IP", "v6 {}", "2001:db8::ff00:42:8329"),
    ("IP", "v6 {} end", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("SECRET", "key {}", "sk-" + "proj-" + _mixed(48)),
    ("SECRET", "OPENAI_API_KEY={}", "sk-" + _mixed(48)),
    ("SECRET", "anthropic {}", "sk-" + "ant-api03-" + _mixed(80)),
    ("SECRET", "aws {}", "AKIA" + _rand(string.ascii_uppercase + string.digits, 16)),
    ("SECRET", "token {}", "ghp_" + _mixed(36)),
    ("SECRET", "pat {}", "github_" + "pat_" + _mixed(22) + "_" + _mixed(59)),
    ("SECRET", "slack {}", "xoxb-" + _rand(string.digits, 12) + "-" + _mixed(24)),
    ("SECRET", "stripe {}", "sk_" + "live_" + _mixed(24)),
    ("SECRET", "google {}", "AIza" + _rand(_B64URL, 35)),
    ("SECRET", "hf {}", "hf_" + _mixed(34)),
    ("SECRET", "jwt {} sent", _JWT),
    ("SECRET", "sha key {}", _rand("0123456789abcdef", 64)),
    ("SECRET", "aws secret {}", _mixed(40)[:10] + "/" + _mixed(29)),
    ("SECRET", "base64 {} end", _mixed(42) + "=="),
    ("SECRET", "password: {}", "hunter22"),
    ("SECRET", 'api_key = "{}"', "abcdefghij"),
    ("SECRET", "the password is {} ok", "Summer2024!"),
    ("SECRET", "Authorization: Bearer {}", _mixed(32)),
    ("SECRET", "postgres://{}@db.example.com:5432/app", "admin:s3cr3t"),
    ("SECRET", "my key:\n{}\nthanks", _PEM),
]

# Texts that hold nothing to redact: kept exactly.
NEGATIVES = [
    "version 1.2.3", "upgrade to v2.10.0", "Python 3.11.7", "released on 2024-03-15", "due 15/03/2024",
    "due 15.03.2024", "March 15, 2024", "at 12:30:45", "costs $1,299.99", "only €49.90", "1,000,000 users",
    "pi is 3.14159", "lr 1e-5", "port 8080", "order #123456", "antidisestablishmentarianism",
    "internationalization", "get_user_by_email_address(user)", "HTTPRequestHandlerFactory",
    "snake_case_identifier_with_many_words_here_and_more", "UserAccountRegistrationServiceImplementation",
    "id 550e8400-e29b-41d4-a716-446655440000", "see https://example.com/docs/getting-started",
    "/usr/lib/python3.11/site-packages/torch", "ISBN 978-3-16-148410-0", "from 2019-2023", "open 10:00-18:00",
    "pip install scikit-learn", "max_tokens=512", "password = getpass()", "the secret is patience",
    "std::vector<int> v; a::b", "1.2.3.4.5", "temperature 0.7 top_p 0.95", "width: 1920px",
    "rgb(255, 255, 255) #FF5733", "mask 0x7fffffff", "commit abc1234", "room 404, ZIP 94103",
    "meet at 5 pm", "card 4111 1111 1111 1112", "card 1234 5678 9012 3456", "card 5500-0000-0000-0005",
    "visa 4012888888881882", "IBAN GB82 WEST 1234 5698 7654 33", "DE89370400440532013001",
    "Mixing <EMAIL> and <SECRET> placeholders", "x = [1, 2, 3, 4, 5, 6, 7, 8]", "timestamp 1700000000000",
    "It's 10 000 km away", "Go to section 3.2.1 and 4.5", "call me tomorrow", "a@b", "user@localhost",
    "serve on 127.0.0.1:8000 or 0.0.0.0", "vllm serve HuggingFaceTB/SmolLM2-135M-Instruct",
    "meta-llama/Llama-3.1-8B-Instruct-GGUF", "sentence-transformers/all-MiniLM-L6-v2",
    "HTTPRequestHandlerFactoryV2Builder9", "src/com/example/project/v2/UserService2Impl.java",
]

_redactor = default_redactor()


@pytest.mark.parametrize(("kind", "template", "value"), PLANTED, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(PLANTED)])
def test_each_planted_value_is_redacted_with_its_kind(kind, template, value):
    text = template.format(value)
    out = _redactor.redact(text)
    assert value not in out, out
    assert f"<{kind}>" in out, out
    assert out == template.format(f"<{kind}>"), out  # nothing around the value is touched
    found = _redactor.findings(text)
    assert [(f.kind, text[f.start:f.end]) for f in found] == [(kind, value)]


@pytest.mark.parametrize("text", NEGATIVES)
def test_negatives_are_kept(text):
    assert _redactor.findings(text) == []
    assert _redactor.redact(text) == text


def test_luhn_and_iban_checks():
    assert luhn_ok("4111 1111 1111 1111") and not luhn_ok("4111 1111 1111 1112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_luhn_invalid_card_numbers_are_kept():
    valid = "4111 1111 1111 1111"
    for last in "023456789":
        number = valid[:-1] + last
        assert not luhn_ok(number)
        assert _redactor.redact(f"card {number} thanks") == f"card {number} thanks"
    assert _redactor.redact(f"card {valid} thanks") == "card <CARD> thanks"


def test_many_values_in_one_text():
    text = " and ".join(template.format(value) for _, template, value in PLANTED)
    out = _redactor.redact(text)
    assert not [value for _, _, value in PLANTED if value in out]
    assert out == " and ".join(template.format(f"<{kind}>") for kind, template, _ in PLANTED)


def test_findings_are_sorted_spans_without_overlap():
    text = "mail a.b@example.com, call +1 415-555-2671, card 4111111111111111"
    found = _redactor.findings(text)
    assert [f.kind for f in found] == ["EMAIL", "PHONE", "CARD"]
    assert all(isinstance(f, Finding) for f in found)
    assert all(a.end <= b.start for a, b in zip(found, found[1:]))


def test_kinds_can_be_limited():
    only_email = Redactor(kinds=["EMAIL"])
    assert only_email.redact("a.b@example.com 8.8.8.8") == "<EMAIL> 8.8.8.8"
    with pytest.raises(ValueError, match="unknown kinds"):
        Redactor(kinds=["NAME"])
    assert set(KINDS) == {"EMAIL", "PHONE", "CARD", "IBAN", "IP", "SECRET"}


def test_default_redactor_is_cached():
    assert default_redactor() is default_redactor()


def test_redact_record_redacts_texts_and_keeps_ids_and_other_fields():
    secret = "sk-" + _mixed(40)
    raw = {"id": "log-42", "user_id": "u-7",
           "messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "My email is alice@example.com, key " + secret},
                        {"role": "assistant", "content": None,
                         "tool_calls": [{"id": "call_1", "type": "function",
                                         "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}]},
                        {"role": "tool", "tool_call_id": "call_1", "name": "lookup", "content": "found 8.8.8.8"},
                        {"role": "assistant", "content": "Call +44 20 7946 0958."},
                        {"role": "user", "content": "Thanks! Card 4111 1111 1111 1111"}],
           "feedback": {"rating": -1, "edited_response": "Call <PHONE> or 020 7946 0958.",
                        "comment": "reach me at bob@example.org"},
           "metadata": {"channel": "web", "email_seen": "kept@as-is.com"}}
    record = parse_record(raw, "logs.jsonl", 3)
    clean = _redactor.redact_record(record)

    assert isinstance(clean, LogRecord) and clean is not record
    assert clean.id == record.id == "log-42"
    assert (clean.user_id, clean.metadata, clean.source) == (record.user_id, record.metadata, record.source)
    assert clean.feedback.rating == record.feedback.rating == -1
    assert [m["content"] for m in clean.messages] == [
        "Be brief.", "My email is <EMAIL>, key <SECRET>", record.messages[2]["content"], "found <IP>",
        "Call <PHONE>.", "Thanks! Card <CARD>"]
    for before, after in zip(record.messages, clean.messages):
        assert set(before) == set(after)
        assert {k: v for k, v in before.items() if k != "content"} == {k: v for k, v in after.items() if k != "content"}
    assert clean.feedback.edited_response == "Call <PHONE> or <PHONE>."
    assert clean.feedback.comment == "reach me at <EMAIL>"
    assert clean.query == "My email is <EMAIL>, key <SECRET>" and clean.answer == "Call <PHONE>."
    # The input record is untouched (frozen dataclass, new message dicts).
    assert "alice@example.com" in record.query


def test_redact_record_content_parts_and_missing_feedback():
    record = LogRecord(id="r1", messages=(
        {"role": "user", "content": [{"type": "text", "text": "ip 10.0.0.1"}, {"type": "image_url", "image_url": "u"}]},
        {"role": "assistant", "content": "ok"}))
    clean = _redactor.redact_record(record)
    assert clean.messages[0]["content"] == [{"type": "text", "text": "ip <IP>"}, {"type": "image_url", "image_url": "u"}]
    assert clean.feedback == Feedback() and clean.id == "r1"


def _random_texts(seed: int, count: int):
    rng = random.Random(seed)
    pieces = ([template.format(value) for _, template, value in PLANTED] + NEGATIVES
              + [value for _, _, value in PLANTED] + [f"<{k}>" for k in KINDS]
              + [" ", "\n", ":", "=", "@", "-", ".", "+", "/", "'", '"', "(", ")", "0", "12", "999", "x"])
    noise = string.ascii_letters + string.digits + " .:-+@/=_<>()'\"\n"
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.7:
                parts.append(rng.choice(pieces))
            else:
                parts.append("".join(rng.choice(noise) for _ in range(rng.randint(1, 20))))
        yield rng.choice(["", " "]).join(parts)


def test_redacting_twice_equals_redacting_once():
    for text in _random_texts(seed=7, count=3000):
        once = _redactor.redact(text)
        assert _redactor.redact(once) == once, text
        assert _redactor.findings(once) == [], text


def test_planted_values_never_survive_in_random_surroundings():
    rng = random.Random(11)
    for _ in range(1000):
        kind, template, value = rng.choice(PLANTED)
        left = rng.choice(["", "Hi ", "see: ", "(", "\n", "value=", "text "])
        right = rng.choice(["", " ok", ".", ")", ",", "\n", "; thanks"])
        text = left + template.format(value) + right
        assert value not in _redactor.redact(text), text

"""Subject keys: the values a data subject is known by (a customer number, an email address).

A key goes into an IoT Hub query as a string literal. The query language has no documented
escape for a quote inside a literal, so a key that could end its literal early is refused, not
escaped: single and double quotes, backslashes, control and format characters (zero-width
joiners, bidirectional overrides), and any character that Unicode compatibility normalisation
(NFKC) would turn into another — a fullwidth apostrophe ``＇`` is a quote to some software. What
is left can stand between two quotes and mean only itself: brackets, ``OR 1=1``, ``--`` or
``/*`` inside a literal are plain characters.

A key is personal data. It is stored on its discovery only until retention clears it; the audit
trail and the plan show a query with ``‹key 1›`` in its place and a digest of the key salted
with the request reference, so someone who holds the key can later prove what was searched.
"""

import hashlib
import unicodedata

MAX_KEYS = 20
MAX_KEY_LENGTH = 128
FORBIDDEN = {"'": "a single quote", '"': "a double quote", "\\": "a backslash"}
# Control, format, surrogate, private-use and unassigned characters, and line/paragraph breaks.
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def check_key(value: str) -> str:
    """Why ``value`` cannot be searched for, or "" when it can."""
    if not value.strip():
        return "is empty"
    if value != value.strip():
        return "starts or ends with a space"
    if len(value) > MAX_KEY_LENGTH:
        return f"is {len(value)} characters long, over {MAX_KEY_LENGTH}"
    for char in value:
        if char in FORBIDDEN:
            return f"contains {FORBIDDEN[char]}, which the query language cannot carry safely"
        if unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            return f"contains the invisible or control character U+{ord(char):04X}"
    normalised = unicodedata.normalize("NFKC", value)
    if normalised != value:
        odd = next(c for c in value if unicodedata.normalize("NFKC", c) != c)
        return (
            f"contains {odd!r} (U+{ord(odd):04X}), which stands for "
            f"{unicodedata.normalize('NFKC', odd)!r}: type the plain character"
        )
    return ""


def parse_keys(text: str) -> tuple[list[str], list[str]]:
    """(keys, problems) from one key per line; blank lines ignored, duplicates merged."""
    keys: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip()
        if not value:
            continue
        problem = check_key(value)
        if problem:
            problems.append(f"line {number}: the key {shown(value)} {problem}.")
        elif value not in keys:
            keys.append(value)
    if len(keys) > MAX_KEYS:
        problems.append(f"{len(keys)} keys: one search takes at most {MAX_KEYS}.")
    return keys, problems


def shown(value: str) -> str:
    """A key quoted for a message, with anything unprintable escaped and long ones cut."""
    text = value if len(value) <= 40 else value[:40] + "…"
    return ascii(text) if not text.isprintable() else repr(text)


def placeholder(index: int) -> str:
    return f"‹key {index + 1}›"


def mask(text: str, keys: list[str]) -> str:
    """``text`` with every key replaced by its placeholder, longest first (one key may contain
    another), for anything kept longer than the keys: the audit trail, logs, the plan."""
    for index, key in sorted(enumerate(keys), key=lambda item: -len(item[1])):
        text = text.replace(key, placeholder(index))
    return text


def digest(reference: str, key: str) -> str:
    """SHA-256 of the key salted with the request reference, hex: proves which key was searched
    without keeping it. A short key (a customer number) can be guessed from its digest by
    trying them all; the digest is for the auditor, not a secret."""
    return hashlib.sha256(f"{reference}\x1f{key}".encode()).hexdigest()

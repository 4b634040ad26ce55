"""Credentials written as literals: what a variable name or a value gives away.

Shared by the Kubernetes env check and the Dockerfile ENV/ARG/LABEL/RUN checks. Heuristics:
value formats that are credentials whatever their name (private keys, cloud and forge tokens,
JWTs, URLs with a password), and literal values under names that say they hold one.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|passwd|pwd$|secret|token|api[_-]?key|apikey|private[_-]?key|credential|"
    r"access[_-]?key|auth[_-]?key|client[_-]?secret|connection[_-]?string|dsn$)"
)
_NAME_HINTS = ("pass", "pwd", "secret", "token", "key", "credential", "connection", "dsn")
# (what, substrings one of which every match contains, pattern): the substring test is a C-speed
# scan that skips the regex for almost every value and script.
_SECRET_VALUE = (
    ("a private key", ("PRIVATE KEY",), re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("an AWS access key id", ("AKIA", "ASIA"), re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", ("gh",), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a GitLab token", ("glpat-",), re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b")),
    ("a Slack token", ("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("a JSON web token", ("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("a URL with a password", ("@",), re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")),
)
# Values that are references or placeholders, not credentials.
_NOT_A_SECRET = re.compile(
    r"^(\$\(.*\)|\$\{.*\}|<.*>|true|false|yes|no|none|null|changeme|/.*|[a-z0-9._-]+\.(txt|json|pem|key|crt))$",
    re.IGNORECASE,
)
# Names that describe a credential rather than hold one: where it is, how long it lives, whether it is used.
_DESCRIBES_A_SECRET = re.compile(
    r"(?i)[_-](name|names|file|path|dir|ref|mount|key_id|id|ttl|timeout|expiry|expiration|expires|lifetime|"
    r"length|size|enabled|enable|disabled|required|type|mode|header|endpoint|url|uri|version|namespace)$"
    r"|^(max|min|num|total)[_-]|tokens$"  # counts and limits: MAX_INPUT_TOKENS is a number, not a token
)


# One C-speed scan for "could any of these match at all": almost every word and script has none of
# the hints, and then neither the per-format patterns nor the name patterns need to run.
_ANY_VALUE_HINT = re.compile("|".join(re.escape(h) for _, hints, _ in _SECRET_VALUE for h in hints))
_ANY_NAME_HINT = re.compile("|".join(_NAME_HINTS))


def credential_reason(name: str, value: str) -> str | None:
    if _ANY_VALUE_HINT.search(value):
        for what, hints, pattern in _SECRET_VALUE:
            if any(h in value for h in hints) and pattern.search(value):
                return f"value looks like {what}"
    if not name:
        return None
    low = name.lower()  # every _SECRET_NAME alternative contains one of these: skip the regex otherwise
    if not _ANY_NAME_HINT.search(low):
        return None
    v = value.strip()
    if (
        len(v) >= 4
        and _SECRET_NAME.search(name)
        and not _DESCRIBES_A_SECRET.search(name)
        and not _NOT_A_SECRET.match(v)
    ):
        return "variable name suggests a credential and the value is a literal"
    return None


_TOKENISH = re.compile(r"^[A-Za-z0-9+/=_-]{24,}$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_CLASSES = (re.compile("[a-z]"), re.compile("[A-Z]"), re.compile("[0-9]"))


def high_entropy(value: str) -> bool:
    """A long base64/url-safe looking literal with high Shannon entropy (hex digests excluded)."""
    v = value.strip()
    if not _TOKENISH.match(v) or _HEX.match(v) or v.isalpha() or v.isdigit():
        return False
    counts = Counter(v)
    entropy = -sum(n / len(v) * math.log2(n / len(v)) for n in counts.values())
    has_classes = sum(bool(rx.search(v)) for rx in _CLASSES) >= 3
    return entropy >= 4.2 and has_classes

"""What a new password must not be: short, common or guessable (issue 18, docs/security.md).

A password is refused when it is shorter than the site's minimum, when it is (or, without the
digits and symbols at its ends, is) one of the 20,000 most common passwords, when it is one
character repeated or a short group repeated, when it is a run along the keyboard, the alphabet
or the digits, and when it is the account's username or a part of its full name with only a
guessable rest (``alice2024!``, ``Smith-smith-1``). A long passphrase that merely contains the
username (``tech-demo-pass``) is accepted: the rest must stand on its own.

The list is ``common_passwords.txt.gz``, shipped with the package and loaded once: the list
Django ships (``django/contrib/auth/common-passwords.txt.gz``, BSD licence, Django 5.2): the
20,000 most common passwords of Royce Williams's compilation
(https://gist.github.com/roycewilliams/226886fd01572964e1431ac8afc999ce), lower-cased. Replace
the file to use another list (one password a line, lower case, gzip).
"""

from __future__ import annotations

import gzip
import string
from functools import cache
from importlib import resources

from cellchain.core.i18n import _
from cellchain.errors import InvalidInput

COMMON_PASSWORDS_FILE = "common_passwords.txt.gz"

#: stripped from both ends before the list is consulted (``Password123!`` is ``password``)
_END_DECORATIONS = string.digits + string.punctuation + string.whitespace

#: runs a person types without thinking, read forwards and backwards
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "012345678901234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertzuiop",
    "azertyuiop",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "1q2w3e4r5t6y7u8i9o0p",
    "qazwsxedcrfvtgbyhnujmikolp",
    "`1234567890-=",
    "~!@#$%^&*()_+",
)

#: a name shorter than this inside a password is not looked for (``al`` is in many words)
_MIN_NAME_PART = 3


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower case, read once per process."""
    data = resources.files("cellchain.core").joinpath(COMMON_PASSWORDS_FILE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def _core(text: str) -> str:
    return text.lower().strip(_END_DECORATIONS)


def _is_common(text: str) -> bool:
    common = common_passwords()
    return text.lower() in common or _core(text) in common


def _is_repetition(text: str) -> bool:
    """One character, or a group of up to four characters, repeated (``aaaa``, ``abcabcabc``)."""
    lowered = text.lower()
    if not lowered:
        return True
    for size in range(1, min(4, len(lowered) // 2) + 1):
        unit = lowered[:size]
        if len(lowered) % size == 0 and unit * (len(lowered) // size) == lowered:
            return True
    return len(set(lowered)) == 1


def _is_sequence(text: str) -> bool:
    """A run along the keyboard, the alphabet or the digits (``qwertyuiop``, ``987654321``),
    possibly repeated (``asdfasdfasdf``)."""
    core = _core(text) or text.lower()
    if len(core) < 3:
        return True
    runs = [*_SEQUENCES, *(sequence[::-1] for sequence in _SEQUENCES)]
    for size in range(3, len(core) + 1):
        unit = core[:size]
        repeated = len(core) % size == 0 and unit * (len(core) // size) == core
        if repeated and any(unit in run for run in runs):
            return True
    return False


def _is_guessable(text: str) -> bool:
    return _is_common(text) or _is_repetition(text) or _is_sequence(text)


def _name_parts(username: str, full_name: str) -> list[str]:
    words = "".join(ch if ch.isalnum() else " " for ch in f"{username} {full_name}".lower())
    parts = {username.lower(), *words.split()}
    return sorted(part for part in parts if len(part) >= _MIN_NAME_PART)


def _leans_on_a_name(password: str, username: str, full_name: str, min_rest: int) -> bool:
    """The password is a name of the account plus a rest that would be refused on its own,
    or too short to count (``alice2024!`` for alice, ``Smith-Smith-1`` for Jo Smith)."""
    lowered = password.lower()
    for part in _name_parts(username, full_name):
        if part not in lowered:
            continue
        rest = _core(lowered.replace(part, ""))
        if len(rest) < min_rest or _is_guessable(rest):
            return True
    return False


def check_password(password: str, *, min_length: int, username: str, full_name: str) -> None:
    """Refuse a new password that is too short, common or guessable, with a message saying
    which rule it broke (``InvalidInput`` with the error on the ``password`` field)."""
    if len(password) < min_length:
        _refuse(
            _("The password must have at least %(count)s characters.", count=min_length),
            _("At least %(count)s characters.", count=min_length),
        )
    if _is_common(password):
        _refuse(
            _(
                "The password is one of the most common passwords (or one with only digits or "
                "symbols added); choose another, for example a few unrelated words."
            ),
            _("A common password; choose another."),
        )
    if _is_repetition(password):
        _refuse(
            _("The password repeats one character or a short group; choose another."),
            _("Repeats one character or a short group."),
        )
    if _is_sequence(password):
        _refuse(
            _(
                "The password is a run along the keyboard, the alphabet or the digits; choose "
                "another."
            ),
            _("A keyboard or alphabet run."),
        )
    if _leans_on_a_name(password, username, full_name, min_rest=max(6, min_length // 2)):
        _refuse(
            _(
                "The password is built on the username or the person's name; choose one that "
                "does not rely on them."
            ),
            _("Built on the username or the name."),
        )


def _refuse(detail: str, field_message: str) -> None:
    raise InvalidInput(detail, errors={"password": [field_message]})

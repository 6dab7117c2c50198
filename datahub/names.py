"""User names: the one place that decides what a DataHub user name is.

The hub (sign-in), the gateway (a user name sent with a token), quotas and sharing all
compare user names; they must agree, or one person could end up as two users, or two
people as one. Everyone imports :func:`normalize_username` from here.

The rules, and why:

* **Surrounding whitespace is dropped and ASCII letters are lowercased**, so ``' Alice '``,
  ``ALICE`` and ``alice`` are one account. Only ASCII letters are lowercased: Python's
  ``str.lower()`` turns the Kelvin sign ``'K'`` (U+212A) into a plain ``'k'`` and the dotted
  ``'İ'`` into two characters, which would let a look-alike name collide with a real one.
* **Names are plain ASCII**: ``[a-z][a-z0-9._-]*``, at most 64 characters. Non-ASCII names
  are *refused*, not folded. Unicode compatibility folding (NFKC) would silently turn the
  fullwidth ``ａｌｉｃｅ`` into ``alice``, while Cyrillic ``аlice`` stays a different
  string that looks the same; neither is something a person means to type. The directory
  itself is no help: OpenLDAP's ``uid`` matching prepares strings with NFKC and case
  folding (RFC 4518), so a search for ``uid=ａｌｉｃｅ`` *finds* alice. Refusing every
  non-ASCII name before the directory is asked keeps one spelling per person.
* **Nothing else is rewritten.** Inner spaces, control characters (null bytes, newlines),
  LDAP filter and DN metacharacters (``*()\\,+"<>;=#``) make a name invalid; they are never
  stripped or escaped into a valid one.
"""

from __future__ import annotations

import re

#: What a normalised user name looks like: company account names (the directory's ``uid``).
USERNAME_PATTERN = r"[a-z][a-z0-9._-]*"
#: Longer names are refused. Account names are short; the limit keeps hostile input
#: (and log lines) small.
MAX_USERNAME_LENGTH = 64

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# The messages a person sees when their user name is refused. One sentence each.
EMPTY_USERNAME = "Enter your username."
USERNAME_TOO_LONG = (
    f"That username is too long: company account names have at most {MAX_USERNAME_LENGTH} "
    "characters."
)
NON_ASCII_USERNAME = (
    "Type your username in plain ASCII letters and digits: look-alike characters such as "
    "a fullwidth 'ａ' or a Cyrillic 'а' are not accepted."
)
INVALID_USERNAME = (
    "That is not a valid username: use your company account name "
    "(letters, digits, '.', '-' and '_')."
)


class UsernameError(ValueError):
    """A user name that cannot be a DataHub user; ``message`` says what to type instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def normalize_username(name: str) -> str:
    """The comparable form of a user name: surrounding whitespace dropped, ASCII lowercased.

    Never raises, so any two names can be compared with it; non-ASCII characters are kept
    as they are, so a look-alike never equals a real ASCII name. Use
    :func:`validate_username` to decide whether the result is an acceptable name.

    >>> normalize_username("  Alice ")
    'alice'
    """
    return name.strip().translate(_ASCII_LOWER)


def username_problem(
    name: str,
    pattern: str = USERNAME_PATTERN,
    max_length: int = MAX_USERNAME_LENGTH,
) -> str | None:
    """Why the *normalised* ``name`` is not an acceptable user name, or None if it is.

    The reason is one sentence for the person who typed it.
    """
    if not name:
        return EMPTY_USERNAME
    if len(name) > max_length:
        return USERNAME_TOO_LONG
    if not name.isascii():
        return NON_ASCII_USERNAME
    if not re.fullmatch(pattern, name):
        return INVALID_USERNAME
    return None


def validate_username(
    name: str,
    pattern: str = USERNAME_PATTERN,
    max_length: int = MAX_USERNAME_LENGTH,
) -> str:
    """Normalise ``name`` and return it; raise :class:`UsernameError` if it is not acceptable.

    >>> validate_username(" Alice ")
    'alice'
    """
    normalized = normalize_username(name)
    problem = username_problem(normalized, pattern, max_length)
    if problem:
        raise UsernameError(problem)
    return normalized


def is_valid_username(name: str) -> bool:
    """True if ``name`` is already a normalised, acceptable user name."""
    return normalize_username(name) == name and username_problem(name) is None

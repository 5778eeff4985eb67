"""Rules for values that arrive from outside: JSON documents, identifiers, labels, text, metadata.

Pure functions (no I/O), standard library only, so every door (Kafka, gRPC, the CLI) applies the
same rules. A value that breaks one raises `InvalidMessage` with a `DeadLetterReason` and a detail
that says what was wrong and what to do; values quoted in a detail are shortened and `repr`-escaped,
so a detail is always printable, valid UTF-8 and safe to log, put in a gRPC status or a DeadLetter.

Why these rules:
- nesting: CPython's json module recurses once per level; a few thousand `[` raise RecursionError
  (not a ValueError) in whatever thread parses, so the depth is measured first, in linear time;
- unpaired surrogates: JSON escapes such as "\\ud800" decode to Python strs that cannot be encoded
  as UTF-8, so building a protobuf message from them, encoding them for Kafka keys and headers, or
  storing them fails far from where they came in;
- control characters (NUL above all: C strings and some stores cut there, so "a\\0b" and "a" can
  become one id) and bidirectional controls (U+202E makes "txt.exe" show as "exe.txt": a label or
  id that reads differently from what it is) in identifiers and labels;
- zero-width and other format characters in identifiers: two ids that look the same but differ.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from labelstream.common.dead_letters import DeadLetterReason, InvalidMessage

# A project id: it keys every store record of the project and prefixes item keys ("project:item").
PROJECT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")  # \Z: "$" would let a final newline by

MAX_JSON_DEPTH = 8               # an item is 2 levels deep (the object and its metadata)
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 1024
MAX_LABEL_CHARS = 100

# Bidirectional formatting controls: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_UNSAFE_EVERYWHERE = frozenset({"Cc", "Cs"})
_UNSAFE_IN_IDENTIFIERS = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp"})
# Control characters have no Unicode name; these are the ones people meet.
_CONTROL_NAMES = {0x00: "NULL", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED", 0x0D: "CARRIAGE RETURN",
                  0x1B: "ESCAPE", 0x7F: "DELETE", 0x85: "NEXT LINE"}

_JSON_TOKEN = re.compile(r'["\[\]{}]')
# The rest of a JSON string after its opening quote, up to and including the closing quote.
# Possessive repeats over disjoint alternatives: one pass, no backtracking, no recursion.
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


def shown(value: str, limit: int = 40) -> str:
    """A value quoted for an error message: at most `limit` characters, escaped by repr."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def describe_character(char: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE', 'U+0000 NULL', 'U+D800 unpaired surrogate'."""
    code = ord(char)
    category = unicodedata.category(char)
    if category == "Cs":
        name = "unpaired surrogate"
    elif category == "Cc":
        name = _CONTROL_NAMES.get(code, "control character")
    else:
        name = unicodedata.name(char, "unnamed character")
    return f"U+{code:04X} {name}"


def json_nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether a JSON text nests arrays and objects deeper than `max_depth`, in one linear scan.

    Counts '[' and '{' outside strings (a ']' or '}' closes one level; a stray one never goes below
    zero, so the count never under-estimates). An unterminated string ends the scan: the parser
    stops with an error there, and the depth it recursed to on the way is the depth seen so far.
    """
    depth = 0
    position = 0
    while (token := _JSON_TOKEN.search(text, position)) is not None:
        char = token.group()
        position = token.end()
        if char == '"':
            string = _STRING_REST.match(text, position)
            if string is None:
                return False
            position = string.end()
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif depth:
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise InvalidMessage(DeadLetterReason.BAD_JSON, f"{name} is not a JSON number (NaN and Infinity are not "
                         "allowed): send a finite number or null")


def loads_json(value: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON document from outside: strict UTF-8, nested at most `max_depth` levels,
    no NaN or Infinity. Raises InvalidMessage(BAD_JSON) and nothing else (never RecursionError)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(DeadLetterReason.BAD_JSON, f"not UTF-8 (byte 0x{exc.object[exc.start]:02x} at "
                             f"offset {exc.start}: {exc.reason}): encode JSON as UTF-8") from None
    if json_nesting_exceeds(text, max_depth):
        raise InvalidMessage(DeadLetterReason.BAD_JSON, f"nested deeper than {max_depth} levels of arrays and "
                             "objects: flatten the document")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidMessage(DeadLetterReason.BAD_JSON, f"not valid JSON: {exc.msg} (line {exc.lineno}, column "
                             f"{exc.colno}): send one JSON object") from None
    except ValueError as exc:  # an integer longer than sys.get_int_max_str_digits() digits
        raise InvalidMessage(DeadLetterReason.BAD_JSON, f"a number is too long to read ({exc.args[0].split(':')[0]}): "
                             "send long numbers as strings") from None


def unsafe_character(value: str, *, identifier: bool) -> str | None:
    """The first character of `value` that is unsafe in it, described with its position, or None.

    Unsafe everywhere: control characters (Cc: C0 including NUL, DEL, C1), unpaired surrogates (Cs)
    and the bidirectional controls. In identifiers also every format character (Cf: zero-width
    space, joiners, BOM, ...) and the line and paragraph separators (Zl, Zp).
    """
    unsafe = _UNSAFE_IN_IDENTIFIERS if identifier else _UNSAFE_EVERYWHERE
    for position, char in enumerate(value):
        if unicodedata.category(char) in unsafe or char in BIDI_CONTROLS:
            return f"{describe_character(char)} at position {position}"
    return None


def text_problem(value: str) -> str | None:
    """What makes `value` invalid as text (a phrase to follow the field's name), or None.

    Text is any Unicode that encodes to UTF-8, without NUL; newlines, tabs and other characters
    are allowed (they are content)."""
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        return (f"has an unpaired surrogate (U+{ord(surrogate.group()):04X}) at position {surrogate.start()}, "
                "which UTF-8 cannot encode: send valid Unicode (a JSON escape of a surrogate needs its pair)")
    nul = value.find("\0")
    if nul >= 0:
        return f"has a NUL character (U+0000) at position {nul}: remove it"
    return None


def check_text(value: str, field: str = "text", project_id: str = "", item_id: str = "") -> None:
    """Raise InvalidMessage(BAD_TEXT) unless `value` is valid text (see `text_problem`); the ids,
    when given, go into the InvalidMessage."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidMessage(DeadLetterReason.BAD_TEXT, f"{field} {problem}", project_id, item_id)


def metadata_problem(metadata: Mapping[str, str]) -> str | None:
    """What is wrong with an item's metadata (a sentence), or None."""
    if len(metadata) > MAX_METADATA_KEYS:
        return (f"metadata has {len(metadata)} keys; the limit is {MAX_METADATA_KEYS}: keep the keys you need "
                "to filter or export by and drop the rest")
    for key, value in metadata.items():
        if not key:
            return "metadata has an empty key: give every value a name"
        if len(key) > MAX_METADATA_KEY_CHARS:
            return (f"metadata key {shown(key)} is {len(key)} characters; the limit is {MAX_METADATA_KEY_CHARS}: "
                    "use a shorter key")
        unsafe = unsafe_character(key, identifier=True)
        if unsafe is not None:
            return f"metadata key {shown(key)} contains {unsafe}: use letters, digits and punctuation"
        if len(value) > MAX_METADATA_VALUE_CHARS:
            return (f"metadata[{shown(key)}] is {len(value)} characters; the limit is {MAX_METADATA_VALUE_CHARS}: "
                    "put long content in the item's text")
        problem = text_problem(value)
        if problem is not None:
            return f"metadata[{shown(key)}] {problem}"
    return None


def check_metadata(metadata: Mapping[str, str], project_id: str = "", item_id: str = "") -> None:
    """Raise InvalidMessage(BAD_METADATA) when the metadata breaks a limit or has an unsafe key or value;
    the ids, when given, go into the InvalidMessage."""
    problem = metadata_problem(metadata)
    if problem is not None:
        raise InvalidMessage(DeadLetterReason.BAD_METADATA, problem, project_id, item_id)
def id_problem(name: str, value: str) -> str | None:
    """What makes an event's id field unsafe (a phrase), or None; an empty id has none."""
    if not value:
        return None
    problem = unsafe_character(value, identifier=True)
    if problem is None and name == "project_id" and not PROJECT_ID_PATTERN.match(value):
        problem = "characters other than letters, digits, '_' and '-' (or more than 64)"
    return problem



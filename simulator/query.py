"""The part of the IoT Hub query language that ``POST /devices/query`` answers, parsed for real:
a tokenizer and a recursive-descent parser turn the text into a ``Query`` that tests each twin or
job, so a query means what its text says and a malformed one is a 400 naming where it went wrong.

    query      := SELECT ('*' | item (',' item)*) FROM collection [WHERE condition]
    item       := COUNT '(' ')' AS name | path [AS name]
    collection := devices | devices.modules | devices.jobs
    condition  := conjunct (OR conjunct)*
    conjunct   := negation (AND negation)*
    negation   := NOT negation | '(' condition ')' | IS_DEFINED '(' path ')'
                | operand [('=' | '!=' | '<>' | '<' | '>' | '<=' | '>=') operand]
                | operand (IN | NIN) '[' constant (',' constant)* ']'
    operand    := path | constant
    constant   := 'text' | "text" | [-]number | 0xhex | TRUE | FALSE | NULL

As Microsoft documents it (learn.microsoft.com "IoT Hub query language", "Queries for IoT Hub
device and module twins"): keywords are case-insensitive; strings take single or double quotes
and only the escapes \\' \\" \\\\ \\uXXXX (no doubled quote), so a quote inside a literal cannot
end it early; IS_DEFINED is the only function; only primitive values compare; devices.jobs takes
``SELECT *`` only; a projected value is named by its alias or its path's last step (``SELECT
DeviceId`` answers ``deviceId``) and left out where undefined. Undefined (a missing property, or
values of two types) stays undefined under NOT and WHERE takes it as false. Top-level names match
in any case, twin keys below them exactly. Stricter than the hub: a top-level name no twin or job
has (``tag.x``) is a 400, not an empty answer, so a typo shows. Comments are not in the language.
"""

import copy
import dataclasses
import operator
import re
from collections.abc import Callable
from typing import NamedTuple

from .errors import ApiError

MAX_QUERY_LENGTH = 8192  # documented under "Twin query limitations"
MAX_NESTING = 64  # parentheses and NOTs: deeper is refused, never recursed into
COLLECTIONS = ("devices", "devices.modules", "devices.jobs")
TWIN_ROOTS = (
    "deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason", "statusUpdateTime",
    "connectionState", "lastActivityTime", "cloudToDeviceMessageCount", "authenticationType",
    "x509Thumbprint", "modelId", "version", "tags", "properties", "capabilities",
    "configurations", "deviceScope", "parentScopes",
)  # fmt: skip
JOB_ROOTS = (
    "deviceId", "jobId", "jobType", "type", "status", "queryCondition", "createdTime",
    "startTime", "endTime", "createdTimeUtc", "startTimeUtc", "endTimeUtc", "createdDateTimeUtc",
    "lastUpdatedDateTimeUtc", "maxExecutionTimeInSeconds", "outcome",
)  # fmt: skip
CONSTANTS = {"TRUE": True, "FALSE": False, "NULL": None}
KEYWORDS = {"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "IN", "NIN", *CONSTANTS}
NOT_SIMULATED = {"TOP", "GROUP", "ORDER", "+", "/", "%"}
RESERVED = KEYWORDS | NOT_SIMULATED  # never a top-level property name or an alias
ORDERING = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
MISSING = object()  # the language's "undefined": a property the document does not have

# One alternative per token kind. A string runs to the first quote of its kind that no backslash
# escapes; a quote that starts no complete string is an unclosed one.
_TOKEN = re.compile(
    r"""(?P<space>\s+) | (?P<comment>--|/\*)
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*") | (?P<unclosed>['"])
    | (?P<number>0[xX][0-9A-Fa-f]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*) | (?P<symbol>!=|<>|<=|>=|[=<>(),\[\].*\-+/%])""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|['\"\\])|\\")
_LEXICAL_ERRORS = {
    "comment": "comments are not part of the IoT Hub query language",
    "unclosed": "this string is never closed",
}


class Token(NamedTuple):
    kind: str  # a group name of _TOKEN, or "end"
    text: str
    value: object  # a string's or a number's value
    position: int


def _syntax_error(position, problem):
    return ApiError("bad_request", f"Syntax error at character {position + 1}: {problem}")


def _value(kind, text, position):
    if kind == "number":
        hexadecimal = text[:2].lower() == "0x"
        return int(text, 16) if hexadecimal else int(text) if text.isdigit() else float(text)
    if kind != "string":
        return None

    def unescape(match):
        if match.group(1) is None:
            where = position + 1 + match.start()
            raise _syntax_error(where, "the only escapes are \\', \\\", \\\\ and \\uXXXX")
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] == "u" else code

    return _ESCAPE.sub(unescape, text[1:-1])


def tokenize(text):
    """The query's tokens, ending with an "end" token."""
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        kind = match.lastgroup if match else None
        if kind in (None, *_LEXICAL_ERRORS):
            unexpected = f"unexpected character {text[position]!r}"
            raise _syntax_error(position, _LEXICAL_ERRORS.get(kind, unexpected))
        if kind != "space":
            word = match.group()
            tokens.append(Token(kind, word, _value(kind, word, position), position))
        position = match.end()
    return [*tokens, Token("end", "", None, len(text))]


@dataclasses.dataclass
class Path:
    """A property reference; its keys are settled once FROM has said what the documents are."""

    names: list
    position: int
    keys: tuple = ()

    def __call__(self, document):
        for key in self.keys:
            if not isinstance(document, dict) or key not in document:
                return MISSING
            document = document[key]
        return document

    def resolve(self, collection):
        """Drop a collection prefix (``devices.jobs.deviceId``), match the top-level name in any
        case, and refuse a name no document of the collection has."""
        names = self.names
        for prefix in (collection.split("."), ["devices"]):
            if len(names) > len(prefix) and [n.lower() for n in names[: len(prefix)]] == prefix:
                names = names[len(prefix) :]
                break
        roots = JOB_ROOTS if collection == "devices.jobs" else TWIN_ROOTS
        root = {name.lower(): name for name in roots}.get(names[0].lower())
        if root is None or (
            root == "properties" and names[1:2] not in ([], ["desired"], ["reported"])
        ):
            what = "job" if collection == "devices.jobs" else "twin"
            raise _syntax_error(self.position, f"no {what} has {'.'.join(names)[:80]!r}")
        self.keys = (root, *names[1:])


def _kind(value):
    """The JSON type a comparison sees, None for what does not compare: undefined (``MISSING``),
    objects and arrays (the hub compares primitive values only)."""
    if value is None or isinstance(value, bool | str):
        return type(value)
    return "number" if isinstance(value, int | float) else None


def _compare(symbol, left, right):
    """True, False, or None (undefined) for values of different types or of none."""
    kind = _kind(left)
    if kind is None or kind != _kind(right):
        return None
    if symbol in ("=", "!=", "<>"):
        return (left == right) == (symbol == "=")
    return ORDERING[symbol](left, right) if kind in ("number", str) else None


def _any(results):
    """OR over three-valued results: true if one is, false if all are, else undefined."""
    results = set(results)
    return True if True in results else (False if results == {False} else None)


def _all(results):
    results = set(results)
    return False if False in results else (True if results == {True} else None)


@dataclasses.dataclass(frozen=True)
class Query:
    """A parsed query: which collection, which documents match, and what each answer holds."""

    collection: str
    fields: tuple | None  # ((name, Path), ...) for a projection, None for SELECT *
    count: str | None  # the alias of SELECT COUNT()
    condition: Callable | None

    @property
    def item_type(self):
        """``x-ms-item-type``. The C# SDK reads it with ``Enum.Parse(typeof(QueryResultType),
        …)``, by member name and case-sensitively: Twin, DeviceJob or Raw."""
        if self.fields is not None or self.count is not None:
            return "Raw"
        return "DeviceJob" if self.collection == "devices.jobs" else "Twin"

    def matches(self, document):
        return self.condition is None or self.condition(document) is True

    def shape(self, document):
        """The answer for one matching document, a copy that shares nothing with the state."""
        if self.fields is None:
            return copy.deepcopy(document)
        values = ((name, path(document)) for name, path in self.fields)
        return {name: copy.deepcopy(value) for name, value in values if value is not MISSING}


def parse(text):
    """The ``Query`` for ``text``, or an ApiError("bad_request") saying what is wrong where."""
    if len(text) > MAX_QUERY_LENGTH:
        raise ApiError(
            "bad_request", f"The query is {len(text)} characters long, over {MAX_QUERY_LENGTH}."
        )
    return _Parser(text).query()


class _Parser:
    def __init__(self, text):
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0
        self.paths = []

    def peek(self):
        return self.tokens[self.index]

    def take(self):
        self.index += 1
        return self.tokens[self.index - 1]

    def word(self):
        """The next token as a keyword or symbol in upper case; None for a literal, so nothing
        inside quotes is ever read as language."""
        token = self.peek()
        return token.text.upper() if token.kind in ("name", "symbol") else None

    def accept(self, word):
        return self.take() if self.word() == word else None

    def expect(self, word, what=None):
        return self.accept(word) or self.fail(what or repr(word))

    def fail(self, expected):
        token = self.peek()
        found = "the end of the query" if token.kind == "end" else repr(token.text[:40])
        problem = f"expected {expected}, found {found}"
        if self.word() in NOT_SIMULATED:
            problem = f"{token.text!r} is IoT Hub query language the simulator does not answer"
        raise _syntax_error(token.position, problem)

    def query(self):
        self.expect("SELECT")
        fields, count = self.select_list()
        self.expect("FROM")
        collection = self.collection()
        condition = self.condition() if self.accept("WHERE") else None
        if self.peek().kind != "end":
            self.fail("AND, OR or the end of the query")
        if collection == "devices.jobs" and (fields or count):
            raise ApiError("bad_request", "Queries on devices.jobs support SELECT * only.")
        for path in self.paths:
            path.resolve(collection)
        return Query(collection, fields and _named(fields), count, condition)

    def select_list(self):
        """(fields or None, COUNT alias or None)."""
        if self.accept("*"):
            return None, None
        if self.accept("COUNT"):
            self.expect("(")
            self.expect(")")
            self.expect("AS", "AS and a name for COUNT()")
            return None, self.name(RESERVED)
        fields = []
        while not fields or self.accept(","):
            path = self.path()
            fields.append((self.name(RESERVED) if self.accept("AS") else None, path))
        return fields, None

    def collection(self):
        position, names = self.peek().position, [self.name()]
        while self.accept("."):
            names.append(self.name())
        collection = ".".join(names).lower()
        if collection not in COLLECTIONS:
            known = ", ".join(COLLECTIONS)
            problem = f"unknown collection {'.'.join(names)[:80]!r}; there are {known}"
            raise _syntax_error(position, problem)
        return collection

    def name(self, reserved=()):
        token = self.peek()
        if token.kind != "name" or token.text.upper() in reserved:
            self.fail("a name")
        return self.take().text

    def path(self):
        token = self.peek()
        names = [self.name(RESERVED)]
        if self.word() == "(":
            raise _syntax_error(token.position, f"unknown function {token.text[:40]!r}")
        while self.accept("."):
            names.append(self.name())
        self.paths.append(Path(names, token.position))
        return self.paths[-1]

    def condition(self):
        return self.chain("OR", lambda: self.chain("AND", self.negation, _all), _any)

    def chain(self, word, part, combine):
        """Parts joined by ``word``, combined in one flat loop however long the chain is."""
        tests = [part()]
        while self.accept(word):
            tests.append(part())
        return tests[0] if len(tests) == 1 else lambda doc: combine(t(doc) for t in tests)

    def negation(self):
        """NOT, a parenthesised condition, IS_DEFINED or a comparison. Nesting is bounded so that
        no query can exhaust the stack."""
        if self.word() in ("(", "NOT"):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise _syntax_error(self.peek().position, f"nested over {MAX_NESTING} deep")
        if self.accept("NOT"):
            inner = self.negation()
            self.depth -= 1
            return lambda doc: None if (value := inner(doc)) is None else not value
        if self.accept("("):
            inner = self.condition()
            self.expect(")", "')', AND or OR")
            self.depth -= 1
            return inner
        if self.accept("IS_DEFINED"):
            self.expect("(")
            path = self.path()
            self.expect(")")
            return lambda doc: path(doc) is not MISSING
        return self.comparison()

    def comparison(self):
        left, symbol = self.operand(), self.word()
        if symbol in ("=", "!=", "<>", *ORDERING):
            self.take()
            right = self.operand()
            return lambda doc: _compare(symbol, left(doc), right(doc))
        if symbol in ("IN", "NIN"):
            self.take()
            values = self.array()

            def within(doc):
                found = _any(_compare("=", left(doc), value) for value in values)
                return found if found is None else found != (symbol == "NIN")

            return within
        return lambda doc: value if isinstance(value := left(doc), bool) else None

    def operand(self):
        if self.peek().kind in ("string", "number") or self.word() in (*CONSTANTS, "-"):
            value = self.constant()
            return lambda doc: value
        return self.path()

    def constant(self):
        token, word = self.peek(), self.word()
        if token.kind in ("string", "number"):
            return self.take().value
        if word in CONSTANTS:
            return CONSTANTS[self.take().text.upper()]
        if word == "-" and self.tokens[self.index + 1].kind == "number":
            self.take()
            return -self.take().value
        return self.fail("a string, a number, true, false or null")

    def array(self):
        self.expect("[")
        values = [self.constant()]
        while self.accept(","):
            values.append(self.constant())
        self.expect("]", "',' or ']'")
        return values


def _named(fields):
    """The projection with each value's name: its alias, else its path's last key."""
    named = {}
    for alias, path in fields:
        name = alias or path.keys[-1]
        if name in named:
            raise _syntax_error(path.position, f"two values are named {name!r}; use AS")
        named[name] = path
    return tuple(named.items())

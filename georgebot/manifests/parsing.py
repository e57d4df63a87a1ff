"""Manifest files → documents: YAML read with line numbers (ruamel round-trip), each document
validated into its pydantic model, pydantic's error locations mapped back to lines.

Called by `source.py` for each file it has not parsed before. Pure: no Git and no checks
across documents (`validation.py` does those). A file is split at its `---` markers before
parsing, so invalid YAML in one document never hides the others. Each document is read under
`Limits` (file size, documents, depth, nodes, value size, steps): the composer counts depth
and nodes as it goes, an alias counting as all the nodes it repeats, so a YAML bomb stops
after a few thousand steps. Whatever a document does, it becomes issues of that document.
"""

from __future__ import annotations

import logging
import re
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode
from ruamel.yaml.scalarbool import ScalarBoolean

from georgebot.manifests import messages
from georgebot.manifests.limits import DEFAULT, LimitExceeded, Limits
from georgebot.manifests.snapshot import ManifestIssue
from georgebot.model.specs import API_VERSION, KINDS, DnsLabel, Manifest

YamlPath = tuple[str | int, ...]
"""Where a value sits in a document, in the YAML spelling: `("spec", "steps", 0, "run")`."""

SUFFIXES = (".yaml", ".yml")
log = logging.getLogger(__name__)

_NAME = re.compile(get_args(DnsLabel)[1].pattern)  # the one spelling of a name: specs.py
_MARKER = re.compile(r"^(---|\.\.\.)(\s|$)")
_LINES = re.compile(r"[^\n]*\n|[^\n]+\Z")
_BARE = re.compile(r"^(---|\.\.\.)\s*(#.*)?$")  # a marker with nothing after it


def is_manifest_file(path: str) -> bool:
    return path.endswith(SUFFIXES)


def valid_name(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_NAME.fullmatch(value))


@dataclass(frozen=True, eq=False)
class Document:
    """One YAML document of a file. `kind` and `name` are set when they could be read, which
    is what lets the engine keep a job whose new spec is broken instead of cancelling it."""

    file: str
    line: int
    kind: str | None
    name: str | None
    manifest: Manifest | None
    issues: tuple[ManifestIssue, ...]
    node: Any = None  # the ruamel node, kept to locate fields for later checks
    offset: int = 0  # lines before the document's chunk (ruamel counts from the chunk)

    @property
    def identified(self) -> bool:
        return self.kind is not None and self.name is not None

    def locate(self, path: YamlPath) -> tuple[int, int | None]:
        return locate(self.node, path, self.offset, default=self.line)

    def issue(self, path: YamlPath, message: str) -> ManifestIssue:
        line, column = self.locate(path)
        return ManifestIssue(
            file=self.file, line=line, column=column,
            kind=self.kind or "-", name=self.name or "-", message=message,
        )


@dataclass(frozen=True, eq=False)
class ParsedFile:
    file: str  # relative to the repository root
    documents: tuple[Document, ...]

    @property
    def broken(self) -> bool:
        """A document could not be identified: the engine must not prune jobs of this file."""
        return any(not doc.identified for doc in self.documents)


def parse_file(file: str, data: bytes | str, limits: Limits = DEFAULT) -> ParsedFile:
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > limits.file_bytes:
        return too_large(file, size, limits)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            issue = ManifestIssue(
                file=file, line=None, column=None, kind="-", name="-", message=messages.not_utf8()
            )
            return ParsedFile(file, (Document(file, 1, None, None, None, (issue,)),))
    documents: list[Document] = []
    yaml = _yaml(limits)
    for count, (start, chunk) in enumerate(_chunks(data), 1):
        if count > limits.documents:
            what = f"the file has more than {limits.documents} documents"
            documents.append(_over(file, start + 1, limits, "documents", what))
            break
        try:
            doc = _document(file, yaml, start, chunk, limits)
        except Exception as e:  # a bug must cost this document, never the file or the sync
            log.exception("reading a document of %s failed", file)
            doc = _unreadable(file, start + 1, f"{type(e).__name__}: {e}")
            yaml = _yaml(limits)
        if doc is not None:
            documents.append(doc)
    return ParsedFile(file, tuple(documents))


def too_large(file: str, size: int, limits: Limits = DEFAULT) -> ParsedFile:
    """The file, unread: it is over `Limits.file_bytes`."""
    return ParsedFile(file, (_over(file, 1, limits, "file_bytes", f"the file is {size} bytes"),))


def _over(file: str, line: int, limits: Limits, limit: str, what: str) -> Document:
    message = LimitExceeded(limit, getattr(limits, limit), what).message
    issue = ManifestIssue(file=file, line=line, column=None, kind="-", name="-", message=message)
    return Document(file, line, None, None, None, (issue,))


def _unreadable(file: str, line: int, problem: str) -> Document:
    issue = ManifestIssue(
        file=file, line=line, column=None, kind="-", name="-",
        message=messages.invalid_yaml(" ".join(problem.split())),
    )
    return Document(file, line, None, None, None, (issue,))


def _yaml(limits: Limits) -> YAML:
    yaml = YAML(typ="rt")
    yaml.Composer = _CountingComposer
    setattr(yaml, _LIMITS, limits)  # the composer finds them on its loader
    return yaml


class _Over(Exception):
    def __init__(self, limit: str, what: str, line: int) -> None:
        super().__init__(what)
        self.limit = limit
        self.what = what
        self.line = line  # in the chunk, from 0


_LIMITS = "george_limits"


class _CountingComposer(Composer):
    """ruamel's composer, counting as it goes: each node, each alias as the nodes it repeats,
    and the depth they reach once aliases are expanded. A value longer than the limit is cut
    (and noted), so that its document can still be identified and the error carry its name."""

    def compose_document(self) -> Any:
        self.limits: Limits = getattr(self.loader, _LIMITS)
        self.depth = 0  # ruamel's own count, left high by an error in an earlier document
        self.warn_double_anchors = False  # YAML allows an anchor to be defined again
        self.nodes = 0
        self.deepest = 0  # the deepest level reached so far in the node being composed
        self.anchored: dict[Any, tuple[int, int]] = {}  # anchor -> (nodes, height)
        self.oversized: list[tuple[int, int, int]] = []  # (line, column, length) in the chunk
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        level = self.depth + 1
        if isinstance(event, AliasEvent):
            nodes, height = self.anchored.get(event.anchor, (1, 1))
            self._count(nodes, level + height - 1, event)
            return super().compose_node(parent, index)
        key = isinstance(parent, MappingNode) and index is None  # a key is not a value
        self._count(0 if key else 1, level, event)
        if isinstance(event, ScalarEvent) and len(event.value) > self.limits.value_chars:
            mark = event.start_mark
            self.oversized.append((mark.line, mark.column, len(event.value)))
            event.value = ""
        before, outer = self.nodes, self.deepest
        self.deepest = level
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            self.anchored[event.anchor] = (self.nodes - before + 1, self.deepest - level + 1)
        self.deepest = max(outer, self.deepest)
        return node

    def _count(self, nodes: int, depth: int, event: Any) -> None:
        self.nodes += nodes
        self.deepest = max(self.deepest, depth)
        line = event.start_mark.line
        if depth > self.limits.depth:
            raise _Over("depth", f"the document nests deeper than {self.limits.depth} levels", line)
        if self.nodes > self.limits.nodes:
            what = f"the document has more than {self.limits.nodes} values"
            if isinstance(event, AliasEvent):
                what += f" once its aliases are expanded (*{event.anchor} repeats {nodes})"
            raise _Over("nodes", what, line)


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """Documents as (first line index, text), split at `---` / `...` lines. A chunk holding only
    comments or directives stays with the next one (a leading comment, `%YAML 1.2`)."""
    lines = _LINES.findall(text)  # YAML breaks lines at \n only (not at \u2028, \x0c...)
    start = 0
    content = False  # whether lines[start:] so far hold more than comments and bare markers
    for index, line in enumerate(lines):
        if _MARKER.match(line):
            if line.startswith("..."):
                yield start, "".join(lines[start : index + 1])
                start, content = index + 1, False
                continue
            if content:
                yield start, "".join(lines[start:index])
                start, content = index, False
        content = content or _content(line)
    if content:
        yield start, "".join(lines[start:])


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(("#", "%")) and not _BARE.match(stripped)


def _document(file: str, yaml: YAML, offset: int, chunk: str, limits: Limits) -> Document | None:
    try:
        node = yaml.load(chunk)
    except _Over as e:
        return _over(file, offset + e.line + 1, limits, e.limit, e.what)
    except YAMLError as e:
        line = offset + 1
        problem = str(e)
        if isinstance(e, MarkedYAMLError):
            lines = chunk.rstrip().count("\n")  # index of the last line with content
            # The problem's line; past the end of the chunk, the opening bracket's, or the last.
            marks = [m.line for m in (e.problem_mark, e.context_mark) if m and m.line <= lines]
            line = offset + (marks[0] if marks else lines) + 1
            problem = ", ".join(p for p in (e.problem, e.context) if p) or problem
        return _unreadable(file, line, problem)
    except (ValueError, ArithmeticError) as e:  # e.g. an integer of more than 4,300 digits
        return _unreadable(file, offset + 1, str(e))
    if node is None:
        return None  # an empty document, e.g. after a trailing `---`
    line = offset + (node.lc.line if isinstance(node, CommentedMap | CommentedSeq) else 0) + 1
    if not isinstance(node, CommentedMap):
        issue = ManifestIssue(
            file=file, line=line, column=None, kind="-", name="-",
            message=messages.not_a_mapping(node),
        )
        return Document(file, line, None, None, None, (issue,), node, offset)
    metadata = node.get("metadata")
    raw_name = metadata.get("name") if isinstance(metadata, dict) else None
    name = raw_name if valid_name(raw_name) else None
    kind = node.get("kind")
    oversized: list[tuple[int, int, int]] = yaml.composer.oversized
    if oversized:  # the document is read, its long values cut: say which, by name
        known = kind if kind in KINDS else None
        cut = tuple(
            ManifestIssue(
                file=file, line=offset + at + 1, column=column + 1, kind=known or "-",
                name=name or "-",
                message=LimitExceeded(
                    "value_chars", limits.value_chars, f"a value is {size} characters long"
                ).message,
            )
            for at, column, size in oversized
        )
        return Document(file, line, known, name, None, cut, node, offset)
    if kind not in KINDS:
        unknown = Document(file, line, None, name, None, (), node, offset)
        message = messages.missing_kind() if kind is None else messages.unknown_kind(kind)
        issue = unknown.issue(("kind",), message)
        if isinstance(raw_name, str):
            issue = issue.model_copy(update={"name": raw_name})
        return Document(file, line, None, name, None, (issue,), node, offset)
    model = KINDS[kind]
    shell = Document(file, line, kind, name, None, (), node, offset)
    data = _plain(node)
    spec = data.get("spec")
    steps = spec.get("steps") if isinstance(spec, dict) else None
    if kind == "TaskTemplate" and isinstance(steps, list) and len(steps) > limits.steps:
        over = LimitExceeded("steps", limits.steps, f"the template has {len(steps)} steps")
        issue = shell.issue(("spec", "steps", limits.steps), over.message)
        return Document(file, line, kind, name, None, (issue,), node, offset)
    try:
        manifest = model.model_validate(data)
    except ValidationError as e:
        issues = []
        for err in e.errors():
            issue = shell.issue(err["loc"], _message(err, model))
            if name is None and isinstance(raw_name, str):
                issue = issue.model_copy(update={"name": raw_name})
            issues.append(issue)
        return Document(file, line, kind, name, None, tuple(issues), node, offset)
    return Document(file, line, kind, name, manifest, (), node, offset)


def locate(
    node: Any, path: Sequence[str | int], offset: int = 0, *, default: int = 1
) -> tuple[int, int | None]:
    """Line and column (1-based) of the deepest part of `path` the document has. For a missing
    field that is the mapping that should hold it; for a bad value, its key."""
    if not isinstance(node, CommentedMap | CommentedSeq):
        return default, None
    line, column = node.lc.line, node.lc.col
    current: Any = node
    for part in path:
        try:
            if isinstance(current, CommentedMap) and part in current:
                line, column = current.lc.key(part)
            elif isinstance(current, CommentedSeq) and isinstance(part, int):
                line, column = current.lc.item(part)
            else:
                break
            current = current[part]
        except (KeyError, IndexError, TypeError):  # merged keys carry no position
            break
    return offset + line + 1, column + 1


def _plain(node: Any) -> Any:
    """ruamel's round-trip types → plain Python for pydantic (dates stay dates). The composer
    has bounded the depth and the size, aliases expanded, so this recursion is bounded too."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool | ScalarBoolean):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime):
        return datetime(
            node.year, node.month, node.day, node.hour, node.minute, node.second,
            node.microsecond, node.tzinfo,
        )
    if isinstance(node, date):
        return date(node.year, node.month, node.day)
    if isinstance(node, TaggedScalar):
        return str(node.value)
    return node


def _message(err: Any, model: type[BaseModel]) -> str:
    loc: YamlPath = tuple(err["loc"])
    kind = err["type"]
    if loc == ("apiVersion",):
        return messages.unknown_api_version(
            None if kind == "missing" else err["input"], API_VERSION
        )
    if kind == "missing":
        return messages.missing_field(loc)
    if kind == "extra_forbidden":
        return messages.unknown_field(loc, _fields_at(model, loc[:-1]))
    if loc[-2:] == ("metadata", "name") and isinstance(err["input"], str):
        return messages.bad_name(loc, err["input"])
    return messages.bad_value(loc, err["msg"], err["input"])


def _fields_at(model: type[BaseModel], path: YamlPath) -> list[str]:
    """The fields (by alias) of the model found at `path`, for 'did you mean' suggestions."""
    current: Any = model
    for part in path:
        current = _child(_strip(current), part)
        if current is None:
            return []
    current = _strip(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _strip(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _child(tp: Any, part: str | int) -> Any:
    origin = get_origin(tp)
    if origin is list and isinstance(part, int):
        return get_args(tp)[0]
    if origin is dict:
        return get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
    return None

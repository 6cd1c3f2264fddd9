"""Reading policy files: YAML with line numbers, told apart by content, validated, compiled.

One reader serves ``hotpath policy check`` and the engine (``load_policy``), so a file the check
passes is a file the engine loads. Every problem carries the line it is on: YAML is composed into
nodes, which keep their marks, and pydantic's error locations are walked back through those nodes.
YAML anchors and aliases are refused (a few lines of aliases can expand to millions of values), and so
is nesting deeper than any policy needs. A key given twice is a warning: YAML keeps only the last one
(Prowler too), so the rule written first is silently lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stream.policy.mutelist import Mutelist, MutelistDocument
from stream.policy.rules import MutelistMutes, MuteSource, Policy, PolicyDocument, PolicyMutes, PolicySource

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
_OPENING = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
            yaml.FlowSequenceStartToken)
_CLOSING = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
MUTELIST_KEY = "Mutelist"
VERSION_KEY = "version"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, at a line (0 when the file could not be read at all)."""

    path: str
    line: int
    message: str
    warning: bool = False


class PolicyFileError(Exception):
    """A file that cannot be used, with every problem found in it."""

    def __init__(self, problems: Sequence[Problem]):
        super().__init__(problems[0].message)
        self.problems = tuple(problems)


@dataclass(frozen=True)
class PolicyFile:
    """A valid policy file: what it is, its content hash, its model, and the warnings it deserved."""

    source: PolicySource
    document: PolicyDocument | MutelistDocument
    warnings: tuple[Problem, ...] = ()


def read_policy_file(path: Path, today: date | None = None) -> PolicyFile:
    """The file validated, or PolicyFileError listing every problem with its line.

    With ``today``, mute rules that expired before it are warned about: valid, but muting nothing.
    """
    name = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PolicyFileError([Problem(name, 0, f"cannot read the file: {exc.strerror or exc}")]) from None
    return read_policy_bytes(name, raw, today)


def read_policy_bytes(name: str, raw: bytes, today: date | None = None) -> PolicyFile:
    """A policy file's content validated, as :func:`read_policy_file` validates a file (``name`` says where it is)."""
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyFileError([Problem(name, 0, f"larger than {MAX_FILE_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyFileError([Problem(name, 0, f"not UTF-8 text (byte {exc.start})")]) from None
    root, data = _compose(name, text)
    warnings = list(_duplicate_keys(name, root))
    model: type[PolicyDocument] | type[MutelistDocument]
    if isinstance(data, dict) and MUTELIST_KEY in data:
        model, kind = MutelistDocument, "prowler-mutelist"
    elif isinstance(data, dict) and VERSION_KEY in data:
        model, kind = PolicyDocument, "hotpath"
    else:
        raise PolicyFileError([Problem(name, _line(root), "neither a Prowler mutelist (top-level `Mutelist`) nor a "
                                                          "hotpath policy (top-level `version`)")])
    try:
        document = model.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(name, root, error) for error in exc.errors(include_url=False)]
        raise PolicyFileError(sorted(problems, key=lambda problem: problem.line)) from None
    version = None
    if isinstance(document, PolicyDocument):
        version = document.version
        warnings.extend(_expired_rules(name, root, document, today) if today else ())
    source = PolicySource(path=name, kind=kind, sha256=hashlib.sha256(raw).hexdigest(), version=version)
    return PolicyFile(source=source, document=document,
                      warnings=tuple(sorted(warnings, key=lambda problem: problem.line)))


def load_policy(paths: Sequence[Path]) -> Policy:
    """Every file read and compiled into one Policy, in the order given; PolicyFileError on the first bad file."""
    return compile_policy([read_policy_file(path) for path in paths])


def compile_policy(files: Sequence[PolicyFile], source: str | None = None) -> Policy:
    """Valid files compiled into one Policy, in order; ``source`` names where every mute came from (each
    file's name when None)."""
    mutes: list[MuteSource] = []
    overrides, routes = [], []
    for policy_file in files:
        document, name = policy_file.document, source or Path(policy_file.source.path).name
        if isinstance(document, MutelistDocument):
            mutes.append(MutelistMutes(Mutelist(document), name))
        else:
            mutes.append(PolicyMutes(tuple(document.mute), name))
            overrides.extend(document.overrides)
            routes.extend(document.routes)
    return Policy(sources=[f.source for f in files], mutes=mutes, overrides=overrides, routes=routes)


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, leaving dates as text: the model parses them, so a bad date gets its line."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


def _compose(name: str, text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data it constructs."""
    loader = _Loader(text)
    try:
        _screen(name, text)
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise PolicyFileError([Problem(name, line, f"not valid YAML: {exc.problem or exc.context}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyFileError([Problem(name, 0, f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _walk(root: yaml.Node | None) -> Iterator[yaml.Node]:
    stack = [] if root is None else [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _screen(name: str, text: str) -> None:
    """Refuse aliases and deep nesting from the token stream, before anything is built or expanded.

    Each alias keeps its own line here. PyYAML's time grows with the square of the nesting depth, so
    the scan stops at the first token past ``MAX_DEPTH``: a hostile file costs what a flat one does.
    """
    depth = 0
    for token in yaml.scan(text, Loader=_Loader):
        if isinstance(token, yaml.AliasToken):
            raise PolicyFileError([Problem(name, token.start_mark.line + 1, "YAML anchors and aliases are not "
                                                                            "supported in policy files; write the "
                                                                            "values out")])
        depth += isinstance(token, _OPENING) - isinstance(token, _CLOSING)
        if depth > MAX_DEPTH:
            raise PolicyFileError([Problem(name, token.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")])


def _duplicate_keys(name: str, root: yaml.Node | None) -> Iterator[Problem]:
    for node in _walk(root):
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in first:
                    yield Problem(name, _line(key), f"key {key.value!r} is given again (first on line "
                                                    f"{first[key.value]}); only this last one is read", warning=True)
                elif isinstance(key, yaml.ScalarNode):
                    first[key.value] = _line(key)


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _locate(root: yaml.Node | None, loc: Sequence[str | int]) -> tuple[int, str]:
    """The line a pydantic location points to, and the location written ``mute.0.expires``."""
    node, path, line = root, [], _line(root)
    for part in loc:
        if part == "[key]":
            continue  # the key's own line was already taken when its entry was looked up
        path.append(str(part))
        if isinstance(node, yaml.MappingNode):
            pair = next(((key, value) for key, value in reversed(node.value)
                         if isinstance(key, yaml.ScalarNode) and key.value == str(part)), None)
            node = pair[1] if pair else None
            line = _line(pair[0]) if pair else line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = _line(node)
        else:
            node = None
    return line, ".".join(path)


def _problem(name: str, root: yaml.Node | None, error: dict[str, Any]) -> Problem:
    """A pydantic error as a line: where its location points to, and the message in words."""
    line, where = _locate(root, error["loc"])
    message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
    return Problem(name, line, f"{where}: {message}" if where else message)


def _expired_rules(name: str, root: yaml.Node | None, document: PolicyDocument, today: date) -> Iterator[Problem]:
    for position, rule in enumerate(document.mute):
        if rule.expires is not None and rule.expires < today:
            line, _ = _locate(root, ("mute", position, "expires"))
            yield Problem(name, line, f"mute rule {rule.id!r} expired on {rule.expires}: it mutes nothing",
                          warning=True)

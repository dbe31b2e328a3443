"""Read an environment's config: from Pulumi (in the stack program) or its stack file (offline).

A stack file is read as Pulumi reads it, but stricter where Pulumi would silently take something other than
what was meant (a repeated key: the last one wins) and bounded where a file could make reading it unbounded
(aliases that expand exponentially, or into themselves). Every problem of the file is reported with its
line; a file that cannot be read at all stops at its first problem.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from modelplane.config import (
    CONFIG_NAMESPACE,
    SECTIONS,
    ConfigError,
    EnvironmentConfig,
    parse_environment,
    referenced_secret_names,
)

SECRET_PLACEHOLDER = "plan-placeholder-secret"
STACK_FILE_MAX_BYTES = 1024 * 1024
"""A stack file is a few kilobytes; a larger one is not a stack file."""
YAML_NODES_MAX = 100_000
"""Nodes a stack file may hold once its aliases are expanded (the shipped ones hold a few hundred)."""
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
"""What Pulumi reads from a stack file."""
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlFileError(Exception):
    """A YAML file that cannot be read; `problems` has one line per problem, each naming the file and line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _StackFileLoader(yaml.SafeLoader):
    """SafeLoader, composing first so the node graph can be checked before anything is built from it.

    Unquoted dates stay text, as Pulumi passes them to the program (a date object is no JSON config value)."""


_StackFileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge")
)


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _expanded_size(root: Node, path: Path) -> int:
    """Nodes the document holds once every alias is expanded, counted without expanding any (each distinct node
    once); raises YamlFileError past YAML_NODES_MAX or on an alias that contains itself."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # Iterative post-order walk: a deep document must not hit Python's recursion limit.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if children_done:
            on_path.discard(id(node))
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > YAML_NODES_MAX:
                raise YamlFileError(
                    [
                        f"{path}:{_line(node)}: YAML aliases here expand to more than {YAML_NODES_MAX:,} values "
                        "(an alias bomb?); write the values out, or use fewer aliases"
                    ]
                )
            sizes[id(node)] = size
            continue
        if id(node) in on_path:
            raise YamlFileError([f"{path}:{_line(node)}: a YAML alias refers to a node that contains it; remove it"])
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _node_problems(root: Node, path: Path) -> list[str]:
    """Keys given twice in one mapping (YAML forbids it, and Pulumi would silently keep the last) and tags that
    make something other than plain values (binary, sets, timestamps)."""
    problems: list[tuple[int, str, int]] = []
    tags: list[str] = []
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if node.tag not in _PLAIN_TAGS:
            tags.append(
                f"{path}:{_line(node)}: tag {node.tag.replace('tag:yaml.org,2002:', '!!')}: a stack file holds "
                "plain values (text, numbers, booleans, lists, mappings); remove the tag"
            )
        if isinstance(node, MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                    continue
                identity = (key.tag, key.value)
                if identity in first_line:
                    problems.append((_line(key), key.value, first_line[identity]))
                else:
                    first_line[identity] = _line(key)
        stack.extend(_children(node))
    return sorted(tags) + [
        f"{path}:{line}: key {key!r} repeats the one on line {first}; YAML forbids repeated keys (Pulumi would "
        "keep only the last): keep one"
        for line, key, first in sorted(problems)
    ]


def _decoded(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    problems = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                f"{path}:{number}:{exc.start + 1}: byte 0x{line[exc.start]:02x} is not UTF-8; save the file as "
                "UTF-8 (Pulumi reads nothing else)"
            )
    raise YamlFileError(problems)


def _yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = f"{context}, {problem}" if context else problem
    hint = ""
    if "'\\t'" in message:
        hint = "; indent with spaces: YAML does not allow tabs"
    elif "could not determine a constructor" in message:
        hint = "; stack files hold plain values: remove the tag"
    return f"{where}: not valid YAML: {message}{hint}"


def load_yaml_file(path: Path) -> Any:
    """The one YAML document in `path`, read as Pulumi would but refusing repeated keys, alias bombs, non-UTF-8
    bytes and files over STACK_FILE_MAX_BYTES; raises YamlFileError naming the file and line of every problem."""
    try:
        with path.open("rb") as stream:
            data = stream.read(STACK_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise YamlFileError([f"{path}: cannot read it: {exc.strerror or exc}"]) from None
    if len(data) > STACK_FILE_MAX_BYTES:
        raise YamlFileError([f"{path}: larger than {STACK_FILE_MAX_BYTES // 1024} KiB; not a stack file"])
    text = _decoded(path, data)
    try:
        loader = _StackFileLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise YamlFileError(
            [f"{path}:{line}: character U+{exc.character:04X} ({exc.reason}); delete it or write it as an escape"]
        ) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _expanded_size(root, path)
        problems = _node_problems(root, path)
        if problems:
            raise YamlFileError(problems)
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise YamlFileError([_yaml_error(path, exc)]) from None
    finally:
        loader.dispose()


@dataclass(frozen=True)
class StackFile:
    """The `config:` block of `stacks/Pulumi.ENV.yaml`, as the engine would hand it to the program."""

    environment: str
    path: Path
    values: dict[str, Any]
    secret_keys: list[str]
    problems: list[str] = field(default_factory=list)
    """What is wrong with the file beyond its sections (unknown keys, plaintext secrets): reported with them."""

    @property
    def region(self) -> str | None:
        region = self.values.get("aws:region")
        return str(region) if region is not None else None

    def sections(self) -> dict[str, Any]:
        """The `modelplane:*` keys that are sections of the environment (secrets and unknown keys are not)."""
        prefix = f"{CONFIG_NAMESPACE}:"
        return {
            key.removeprefix(prefix): value
            for key, value in self.values.items()
            if key.startswith(prefix) and key.removeprefix(prefix) in SECTIONS
        }

    def engine_config(self) -> dict[str, str]:
        """Config as the engine passes it: every value a string, objects as JSON."""
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in self.values.items()}


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _plan_value(key: str, value: Any, secret_keys: list[str]) -> Any:
    """Secure values cannot be decrypted offline: the plan sees a placeholder and marks the key secret."""
    if _is_secure(value):
        secret_keys.append(key)
        return SECRET_PLACEHOLDER
    return value


def _document_problems(path: Path, document: dict[Any, Any]) -> list[str]:
    return [
        f"{path}: top-level key {key!r} is not one Pulumi reads ({', '.join(STACK_FILE_KEYS)}); "
        "put environment settings under `config:`"
        for key in document
        if key not in STACK_FILE_KEYS
    ]


def _key_problems(path: Path, raw_config: dict[Any, Any]) -> list[str]:
    problems = []
    for key in raw_config:
        if not isinstance(key, str) or ":" not in key:
            example = f"{CONFIG_NAMESPACE}:{key}" if isinstance(key, str) else f"{CONFIG_NAMESPACE}:network"
            problems.append(f"{path}: config key {key!r}: Pulumi reads keys as <namespace>:<name>; write {example}")
    return problems


def read_stack_file(environment: str, stacks_dir: Path) -> StackFile:
    """The stack file of `environment`; raises ConfigError when it cannot be read at all. What is wrong with its
    keys is kept in `problems` and reported with the sections' problems by `environment_from_stack_file`."""
    path = stacks_dir / f"Pulumi.{environment}.yaml"
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stacks_dir.glob("Pulumi.*.yaml"))
        hint = "" if known else f" (is {stacks_dir} the project's stacks folder? run modelplane from the project root)"
        raise ConfigError(
            environment, [f"{path}: no such stack file; environments: {', '.join(known) or 'none'}{hint}"]
        )
    try:
        document = load_yaml_file(path)
    except YamlFileError as unreadable:
        raise ConfigError(environment, unreadable.problems) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            environment,
            [
                f"{path}: the file holds {_yaml_type(document)}; a stack file is a mapping with a `config:` "
                "mapping of keys to values (see stacks/Pulumi.dev.yaml)"
            ],
        )
    raw_config = document.get("config") or {}
    if not isinstance(raw_config, dict):
        raise ConfigError(
            environment,
            [f"{path}: `config` holds {_yaml_type(raw_config)}; it must be a mapping of keys to values"],
        )
    problems = _document_problems(path, document) + _key_problems(path, raw_config)
    secret_keys: list[str] = []
    values = {key: _plan_value(key, value, secret_keys) for key, value in raw_config.items() if isinstance(key, str)}
    return StackFile(environment, path, values, secret_keys, problems)


def _yaml_type(value: Any) -> str:
    """What a YAML value is, in the words of YAML: "a list", "text ('dev')"."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"text ({value[:40]!r})"
    return f"{'a boolean' if isinstance(value, bool) else 'a number'} ({value!r})"


def _unknown_key_problems(stack_file: StackFile, secrets: list[str]) -> list[str]:
    """`modelplane:*` keys that are neither a section nor a secret, and secrets written in plain text."""
    prefix = f"{CONFIG_NAMESPACE}:"
    problems = []
    for key in stack_file.values:
        name = key.removeprefix(prefix)
        if not key.startswith(prefix) or name in SECTIONS or key in stack_file.secret_keys:
            continue
        if name in secrets:
            problems.append(
                f"{key}: a secret in plain text in {stack_file.path.name}; delete the line, run `pulumi config set "
                f"--secret {key} --stack {stack_file.environment}` (it stores the value encrypted), and rotate it"
            )
            continue
        close = difflib.get_close_matches(name, [*SECTIONS, *secrets], n=1, cutoff=0.75)
        hint = f"did you mean {prefix}{close[0]}?" if close else f"known: {', '.join(prefix + s for s in SECTIONS)}"
        problems.append(f"{key}: unknown config key; {hint}")
    return problems


def with_secret_placeholders(stack_file: StackFile, secret_names: list[str]) -> tuple[StackFile, list[str]]:
    """The stack file with a placeholder for each secret the environment references but the file lacks.

    Operators set secrets per stack with `pulumi config set --secret`; an offline plan never has
    their values, so it plans with placeholders (marked secret) and reports which are still unset.
    """
    missing = [name for name in secret_names if f"{CONFIG_NAMESPACE}:{name}" not in stack_file.values]
    values = dict(stack_file.values)
    secret_keys = list(stack_file.secret_keys)
    for name in missing:
        key = f"{CONFIG_NAMESPACE}:{name}"
        values[key] = SECRET_PLACEHOLDER
        secret_keys.append(key)
    return StackFile(stack_file.environment, stack_file.path, values, secret_keys, stack_file.problems), missing


def environment_from_stack_file(stack_file: StackFile) -> EnvironmentConfig:
    """The environment the stack file describes; raises ConfigError listing every problem of the file."""
    sections = stack_file.sections()
    problems = stack_file.problems + _unknown_key_problems(stack_file, referenced_secret_names(sections))
    return parse_environment(stack_file.environment, stack_file.values.get("aws:region"), sections, problems)


def environment_from_pulumi_config() -> EnvironmentConfig:
    """The running stack's environment, from `pulumi.Config` (what `pulumi up` and the plan both use)."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    sections = {section: value for section in SECTIONS if (value := config.get_object(section)) is not None}
    return parse_environment(pulumi.get_stack(), pulumi.Config("aws").get("region"), sections)

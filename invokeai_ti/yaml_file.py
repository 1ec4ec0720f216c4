"""Reading the YAML files a user or another program keeps under a root: one reader for all.

models.yaml, invokeai.yaml and the saved preferences are edited by hand and written by other
programs, so each is untrusted. Everything goes through ``read_yaml`` so that one place decides
how YAML is parsed (the safe loader only: no tag ever builds a Python object), how much a file
may expand to, and how a file that cannot be read is named in the sentence the user sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_EXPANDED_NODES = 1_000_000
"""The most nodes a file may hold once its aliases are expanded.

An alias (``*a``) repeats a whole node, and nine lines of aliases of aliases make a 500-byte file
that a reader walking it sees as a billion values (the "billion laughs"). Every reader of these
files walks what it loads (the models in models.yaml, the settings in the preferences), so the
expanded size is what costs memory and time. The largest real files hold a few thousand models
of about twenty nodes each: a million nodes is ten times more than any of them.
"""


class YamlFileError(ValueError):
    """A YAML file that could not be read; ``str()`` names the file and the reason in one line."""


def read_yaml(path: Path) -> Any:
    """The parsed content of ``path`` (None for an empty file), or ``YamlFileError``."""
    try:
        text = path.read_text(encoding="utf-8")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if expanded_size(node) > MAX_EXPANDED_NODES:
                raise YamlFileError(
                    f"{path} could not be read (its aliases expand to more than {MAX_EXPANDED_NODES:,} "
                    "values, or to a loop, which no settings file needs)"
                )
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise YamlFileError(f"{path} is not valid YAML ({reason})") from error
    except (OSError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())
        raise YamlFileError(f"{path} could not be read ({reason})") from error


def expanded_size(root: yaml.Node) -> int:
    """How many nodes ``root`` holds with every alias expanded, counting up to one past the limit
    (a loop counts as past it).

    Each node's size is computed once (an alias is the same node object as its anchor), so the
    cost is the size of the file, not of its expansion.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done or not children:
            total = 1 + sum(sizes[id(child)] for child in children)
            sizes[id(node)] = min(total, MAX_EXPANDED_NODES + 1)
            open_nodes.discard(id(node))
            continue
        if id(node) in open_nodes:
            # An alias inside its own anchor: a loop, endless once expanded.
            return MAX_EXPANDED_NODES + 1
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []

"""What the importer offers the recognizers of layers that exporters write as several nodes
(``@spelling``, :mod:`codegen.onnx.registry`): before the walk translates any node, a recognizer
looks at a node's neighbours and may claim a group of nodes for one translation.

:class:`Neighbours` is a part of :class:`~codegen.onnx.importer.Importer`: ``recognize(nodes)``
indexes the nodes (producer and readers of every tensor) and calls the recognizers registered
for each node's op type; they use :meth:`~Neighbours.producer`, :meth:`~Neighbours.readers`,
:meth:`~Neighbours.peek` (a constant's value, evaluating a Constant node or a fold of constants
early, through the same checked folders as the walk) and :meth:`~Neighbours.claim`. The walk then
skips the nodes evaluated early and, for a claimed group, checks every node and translates the
group at its last node (``Importer._node``).
"""

from __future__ import annotations

from .constants import fold
from .errors import OnnxImportError
from .registry import FOLDERS, SPELLINGS
from .validate import check_node

PEEK_DEPTH = 8          # nodes evaluated early behind one constant at most


class Neighbours:
    """The graph around a node, and claims of groups of nodes (see the module doc)."""

    def __init__(self):
        self._producers: dict[str, object] = {}     # tensor -> the node writing it
        self._readers: dict[str, list] = {}         # tensor -> the nodes reading it (once per input)
        self._order: dict[int, int] = {}            # id(node) -> its index in the walk
        self._claims: dict[int, tuple] = {}         # id(node) -> (the group's last node, translate(imp, last))
        self._done: set[int] = set()                # id(node) of nodes evaluated before the walk reached them
        self._not_constant: set[str] = set()        # tensors peek found to be no constant (before the walk)

    def recognize(self, nodes: list):
        """Index ``nodes`` (in walk order) and run the recognizers of their op types."""
        for idx, node in enumerate(nodes):
            self._order[id(node)] = idx
            for i in node.input:
                self._readers.setdefault(i, []).append(node)
            self._producers.update((o, node) for o in node.output if o)
        for node in nodes:
            for recognizer in SPELLINGS.get(node.op_type, ()):
                if id(node) not in self._claims:
                    recognizer(self, node)

    def evaluated_early(self, node) -> bool:
        """Whether ``node`` was evaluated by :meth:`peek` (the walk skips it)."""
        return id(node) in self._done

    def claimed(self, node):
        """(the group's last node, translate) for a claimed node, else None."""
        return self._claims.get(id(node))

    def producer(self, name: str):
        """The node writing tensor ``name`` (None for the graph input, initializers and unknown names)."""
        return self._producers.get(name)

    def readers(self, name: str) -> list:
        """The nodes reading tensor ``name``, once per input that names it."""
        return list(self._readers.get(name, ()))

    def peek(self, name: str):
        """The value of tensor ``name`` if it is a constant, else None. A constant the walk has not
        reached yet (a Constant node, a fold of constants; at most ``PEEK_DEPTH`` nodes deep) is
        evaluated now, as the walk would; a node that fails its checks gives None here (and its
        error when the walk reaches it)."""
        return self._peek(name, 0)[0]

    def _peek(self, name: str, depth: int) -> tuple:
        """(value or None, whether None is final rather than the depth's limit)."""
        if name in self.consts:
            return self.consts[name], True
        node = self._producers.get(name)
        folder = FOLDERS.get(node.op_type) if node is not None else None
        if not name or name in self._not_constant or folder is None or id(node) in self._claims:
            return None, True
        if depth >= PEEK_DEPTH:
            return None, False
        for i in node.input:
            value, final = self._peek(i, depth + 1) if i else (0, True)
            if value is None:
                if final:
                    self._not_constant.add(name)
                return None, final
        try:
            check_node(node, self.opset, self.where)
            fold(self, node, folder)
        except OnnxImportError:
            self._not_constant.add(name)
            return None, True
        self._done.add(id(node))
        return self.consts.get(name), True

    def claim(self, nodes: list, translate) -> bool:
        """Translate ``nodes`` (a recognized spelling) as one: the walk checks each, skips all but the
        last in graph order and calls ``translate(imp, last)`` there, which makes the layer from the
        group's input. Refused (False) where a node is claimed already or fails its checks, or where
        a tensor made inside the group, other than the last node's outputs, is read outside it."""
        if not nodes or len({id(n) for n in nodes}) != len(nodes) or any(id(n) in self._claims for n in nodes):
            return False
        last = max(nodes, key=lambda n: self._order[id(n)])
        reads: dict[str, int] = {}
        for n in nodes:
            for i in n.input:
                reads[i] = reads.get(i, 0) + 1
        for n in nodes:
            try:
                check_node(n, self.opset, self.where)
            except OnnxImportError:
                return False
            if n is not last and any(o and self.consumers.get(o, 0) != reads.get(o, 0) for o in n.output):
                return False
        self._claims.update((id(n), (last, translate)) for n in nodes)
        return True

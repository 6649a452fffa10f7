"""layerGraph: layers and the connections between them, following MATLAB.

``layerGraph(layers)`` connects a layer list in series; ``addLayers``, ``connectLayers``,
``disconnectLayers`` and ``removeLayers`` return a new graph (MATLAB's value semantics), so
``lgraph = connectLayers(lgraph, 'relu_1', 'add_1/in2')`` reads as in MATLAB. A layer list
is a graph that is a chain; :class:`codegen.Network` accepts either.

Unnamed layers are named when they enter a graph, MATLAB style: ``conv_1``, ``relu_1``, ...

Edits take time linear in the number of layers and never copy weights: the new graph shares the
layer objects with the old one (no edit changes a layer), and ``Layers`` hands out copies, so
neither graph can be changed through the other.
"""

from __future__ import annotations

from .errors import NetworkError
from .layers import Layer, LayerArray


def _check_layers(items) -> list[Layer]:
    if isinstance(items, Layer):
        items = [items]
    if isinstance(items, LayerGraph):
        raise NetworkError("expected a layer or a list of layers, got a layerGraph")
    try:
        items = list(items)
    except TypeError:
        raise NetworkError(f"expected a list of layers, got {type(items).__name__}") from None
    for i, layer in enumerate(items):
        if not isinstance(layer, Layer):
            hint = " (did you forget the parentheses, e.g. reluLayer()?)" if callable(layer) else ""
            raise NetworkError(f"element {i + 1} of the layer list is {type(layer).__name__}, not a layer{hint}")
    return [layer.copy() for layer in items]


class LayerGraph:
    """A directed acyclic graph of layers (MATLAB ``layerGraph``)."""

    def __init__(self, layers=()):
        self._layers: list[Layer] = []
        self._index: dict[str, Layer] = {}              # name -> layer
        self._edges: dict[tuple[str, int], str] = {}   # (destination, input index) -> source layer
        self._add(_check_layers(layers), connect=True)

    def _clone(self) -> "LayerGraph":
        """A new graph with the same (shared, unchanged) layers and connections."""
        g = LayerGraph.__new__(LayerGraph)
        g._layers, g._index, g._edges = list(self._layers), dict(self._index), dict(self._edges)
        return g

    def private_copy(self) -> "LayerGraph":
        """A new graph with copies of the layers, free to change (what a Network resolves in place)."""
        g = self._clone()
        g._layers = [layer.copy() for layer in self._layers]
        g._index = {lay.Name: lay for lay in g._layers}
        return g

    # ------------------------------------------------------------------ queries
    @property
    def Layers(self) -> LayerArray:  # noqa: N802 - MATLAB name
        """Copies of the layers (a value, as in MATLAB: changing one does not change the graph)."""
        return LayerArray(layer.copy() for layer in self._layers)

    @property
    def Connections(self) -> list[tuple[str, str]]:  # noqa: N802
        """(Source, Destination) pairs, destinations as 'name/inK' for multi-input layers."""
        out = []
        for layer in self._layers:
            for k, port in enumerate(layer.input_names):
                src = self._edges.get((layer.Name, k))
                if src is not None:
                    out.append((src, layer.Name if len(layer.input_names) == 1 else f"{layer.Name}/{port}"))
        return out

    @property
    def InputNames(self) -> list[str]:  # noqa: N802
        return [lay.Name for lay in self._layers if lay.NUM_INPUTS == 0]

    @property
    def OutputNames(self) -> list[str]:  # noqa: N802
        used = set(self._edges.values())
        return [lay.Name for lay in self._layers if lay.Name not in used]

    def layer(self, name: str) -> Layer:
        """The layer named ``name`` (the graph's own object: read it, do not change it)."""
        lay = self._index.get(name)
        if lay is not None:
            return lay
        raise NetworkError(f"no layer named '{name}' in the graph; layers: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [lay.Name for lay in self._layers]

    def sources(self, name: str) -> list[str | None]:
        """The source layer of each input of layer ``name`` (None where unconnected)."""
        lay = self.layer(name)
        return [self._edges.get((name, k)) for k in range(len(lay.input_names))]

    # ------------------------------------------------------------------ edits (new graph)
    def addLayers(self, layers) -> "LayerGraph":  # noqa: N802
        g = self._clone()
        g._add(_check_layers(layers), connect=True)
        return g

    def connectLayers(self, s: str, d: str) -> "LayerGraph":  # noqa: N802
        g = self._clone()
        g._connect(s, d)
        return g

    def disconnectLayers(self, s: str, d: str) -> "LayerGraph":  # noqa: N802
        g = self._clone()
        src = g._source_name(s)
        dst, k = g._destination(d)
        if g._edges.get((dst, k)) != src:
            raise NetworkError(f"'{s}' is not connected to '{d}'")
        del g._edges[(dst, k)]
        return g

    def removeLayers(self, names) -> "LayerGraph":  # noqa: N802
        names = [names] if isinstance(names, str) else list(names)
        g = self._clone()
        for nm in names:
            g.layer(nm)     # raises for unknown names
        g._layers = [lay for lay in g._layers if lay.Name not in names]
        g._index = {lay.Name: lay for lay in g._layers}
        g._edges = {k: v for k, v in g._edges.items() if k[0] not in names and v not in names}
        return g

    # ------------------------------------------------------------------ internals
    def _add(self, layers: list[Layer], connect: bool):
        taken = set(self.names())
        for lay in layers:
            if lay.Name and lay.Name in taken:
                raise NetworkError(f"two layers are named '{lay.Name}'; layer names must be unique")
            if lay.Name:
                taken.add(lay.Name)
        counters: dict[str, int] = {}
        for lay in layers:
            if not lay.Name:
                base = lay.BASE_NAME
                k = counters.get(base, 0)
                while True:
                    k += 1
                    candidate = f"{base}_{k}"
                    if candidate not in taken:
                        break
                counters[base] = k
                lay._p["Name"] = candidate
                taken.add(candidate)
        prev = None
        for lay in layers:
            self._layers.append(lay)
            self._index[lay.Name] = lay
            if connect and prev is not None and lay.NUM_INPUTS >= 1:
                self._edges[(lay.Name, 0)] = prev.Name
            prev = lay

    def _source_name(self, s: str) -> str:
        name, _, port = s.partition("/")
        self.layer(name)
        if port not in ("", "out"):
            raise NetworkError(f"layer '{name}' has one output named 'out', not '{port}'")
        return name

    def _destination(self, d: str) -> tuple[str, int]:
        name, _, port = d.partition("/")
        lay = self.layer(name)
        ports = lay.input_names
        if not ports:
            raise NetworkError(f"layer '{name}' is an input layer and takes no inputs")
        if port == "":
            if len(ports) != 1:
                raise NetworkError(f"layer '{name}' has inputs {', '.join(ports)}; name one, e.g. '{name}/in1'")
            return name, 0
        if port not in ports:
            raise NetworkError(f"layer '{name}' has no input '{port}'; its inputs are {', '.join(ports)}")
        return name, ports.index(port)

    def _connect(self, s: str, d: str):
        src = self._source_name(s)
        dst, k = self._destination(d)
        if (dst, k) in self._edges:
            raise NetworkError(f"input '{d}' is already connected (to '{self._edges[(dst, k)]}'); "
                               "disconnect it first")
        self._edges[(dst, k)] = src

    def __repr__(self) -> str:
        return (f"  LayerGraph with properties:\n\n"
                f"         Layers: [{len(self._layers)}x1 nnet.cnn.layer.Layer]\n"
                f"    Connections: [{len(self.Connections)}x2 table]\n"
                f"     InputNames: {{{' '.join(repr(n) for n in self.InputNames)}}}\n"
                f"    OutputNames: {{{' '.join(repr(n) for n in self.OutputNames)}}}\n")


def layerGraph(layers=()) -> LayerGraph:  # noqa: N802 - MATLAB name
    """Create a layer graph; the layers of a list are connected in series."""
    return LayerGraph(layers)


def addLayers(lgraph: LayerGraph, layers) -> LayerGraph:  # noqa: N802
    return lgraph.addLayers(layers)


def connectLayers(lgraph: LayerGraph, s: str, d: str) -> LayerGraph:  # noqa: N802
    return lgraph.connectLayers(s, d)


def disconnectLayers(lgraph: LayerGraph, s: str, d: str) -> LayerGraph:  # noqa: N802
    return lgraph.disconnectLayers(s, d)


def removeLayers(lgraph: LayerGraph, names) -> LayerGraph:  # noqa: N802
    return lgraph.removeLayers(names)

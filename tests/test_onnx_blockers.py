"""A refused ONNX model reports every unsupported node at once, grouped by operator, and names the
PyTorch module each came from where the model records it (the default exporter's metadata)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import codegen  # noqa: E402
from codegen.onnx import OnnxImportError  # noqa: E402


class Blocked(torch.nn.Module):
    """Two Cos and one Sin the importer cannot translate, and a Hardtanh (Clip(-1, 1)) it refuses."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
        self.head = torch.nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        y = torch.cos(self.features(x))
        y = torch.sin(y) + torch.cos(y)
        return self.head(y.flatten(1))


def export(model, dynamo: bool) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.randn(1, 3, 8, 8),), buf, dynamo=dynamo)
    return buf.getvalue()


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy exporter", "default exporter"])
def test_every_unsupported_node_is_listed_at_once(dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    with pytest.raises(OnnxImportError) as info:
        codegen.import_onnx(export(Blocked(), dynamo))
    message = str(info.value)
    assert "uses 2 operators codegen does not support, in 3 nodes" in message, message
    assert message.index("Cos (2 nodes:") < message.index("Sin (1 node:"), message        # most frequent first
    if dynamo:
        assert "PyTorch __main__.Blocked.forward" in message or "Blocked.forward" in message, message


def test_a_refusal_names_the_pytorch_module_and_class():
    pytest.importorskip("onnxscript")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Hardtanh(-2.0, 2.0))
    with pytest.raises(OnnxImportError) as info:
        codegen.import_onnx(export(model, True))
    message = str(info.value)
    assert "(Clip; PyTorch module '1' (torch.nn.Hardtanh))" in message, message


def _model(nodes, metadata=None):
    for node in nodes:                      # before make_graph, which copies the nodes
        for key, value in (metadata or {}).items():
            prop = node.metadata_props.add()
            prop.key, prop.value = key, value
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert len(model.graph.node[0].metadata_props) == len(metadata or {})
    return model


@pytest.mark.parametrize("scopes", ["__import__('os').system('false')", "[" * 5000, "['', 'a']" + " " * 5000, "7"])
def test_hostile_metadata_is_never_run_and_never_breaks_a_message(scopes):
    model = _model([helper.make_node("Cos", ["x"], ["y"], name="c")],
                   {"pkg.torch.onnx.name_scopes": scopes, "pkg.torch.onnx.class_hierarchy": scopes})
    with pytest.raises(OnnxImportError, match=r"ONNX node 'c' \(Cos\): operator Cos is not supported"):
        codegen.import_onnx(model)


def test_metadata_module_path_is_escaped():
    model = _model([helper.make_node("Cos", ["x"], ["y"], name="c")],
                   {"pkg.torch.onnx.name_scopes": "['', 'evil\\n\\x1b[31m', 'cos']",
                    "pkg.torch.onnx.class_hierarchy": "['M', 'torch.nn.modules.x.Evil\\n', 'aten.cos']"})
    with pytest.raises(OnnxImportError) as info:
        codegen.import_onnx(model)
    message = str(info.value)
    assert "PyTorch module 'evil\\n\\x1b[31m'" in message and "\n" not in message, message


def test_a_supported_model_still_imports():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5)).eval()
    net = codegen.import_onnx(export(model, False))
    x = torch.randn(2, 3, 8, 8)
    y = net.onnx.from_output(net.predict(net.onnx.to_input(x.numpy()).astype(np.float64)))
    with torch.no_grad():
        assert np.allclose(y, model(x).numpy(), atol=1e-5)

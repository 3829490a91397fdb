#!/usr/bin/env python3
"""Writes the small ONNX models the frontend tests feed to veomni-import.

usage: make_onnx.py KIND OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def parameter_info(name, shape):
    """value_info the torch exporter attaches to a kept parameter."""
    info = helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    for key, value in [
        ("pkg.torch.export.graph_signature.InputSpec.kind", "PARAMETER"),
        ("pkg.torch.onnx.original_node_name", "p_" + name.replace(".", "_")),
    ]:
        entry = info.metadata_props.add()
        entry.key, entry.value = key, value
    return info


def matmul_model(x_shape, with_metadata, opset=20):
    w = numpy_helper.from_array(
        np.arange(12, dtype=np.float32).reshape(3, 4), "proj.weight")
    node = helper.make_node("MatMul", ["x", "proj.weight"], ["y"], name="n_matmul")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[w],
        value_info=[parameter_info("proj.weight", [3, 4])] if with_metadata else [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def main():
    kind, out = sys.argv[1], sys.argv[2]
    if kind == "unknown-op":
        node = helper.make_node("FooBar", ["x"], ["y"], name="n_foo")
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
            value_info=[parameter_info("unused", [1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    elif kind == "no-metadata":
        model = matmul_model([2, 3], with_metadata=False)
    elif kind == "symbolic":
        model = matmul_model(["batch", 3], with_metadata=True)
    elif kind == "old-opset":
        model = matmul_model([2, 3], with_metadata=True, opset=9)
    elif kind == "external":
        # Both parameters (a weight and a rank-1 scale) in OUT.onnx's
        # external data file params.bin.
        model = matmul_model([2, 3], with_metadata=True)
        scale = numpy_helper.from_array(np.full(4, 3.0, np.float32), "proj.scale")
        model.graph.initializer.append(scale)
        model.graph.value_info.append(parameter_info("proj.scale", [4]))
        model.graph.node.append(helper.make_node("Mul", ["y", "proj.scale"], ["z"], name="n_mul"))
        model.graph.output[0].name = "z"
        onnx.save_model(model, out, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="params.bin", size_threshold=0)
        return
    else:
        sys.exit(f"unknown kind {kind}")
    onnx.save(model, out)


if __name__ == "__main__":
    main()

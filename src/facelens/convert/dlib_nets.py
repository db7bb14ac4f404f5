"""The two dlib network topologies facelens converts, written out from their C++ types.

A dlib file stores weights, not wiring: the wiring is the C++ type the example programs
declare. Each function below spells that type as a list of wrappers, outermost first:
``("layer", kind, expect)`` for a computational layer (``expect`` holds the hyper-parameters
the file must agree with), ``("tag", n)``, ``("skip", n)``. ``check`` compares it with what
``read_network`` found, so a file of another shape is refused rather than mis-wired.

From ``examples/dnn_face_recognition_ex.cpp``::

    residual<block,N,BN,SUB>      = add_prev1<block<N,BN,1,tag1<SUB>>>
    residual_down<block,N,BN,SUB> = add_prev2<avg_pool<2,2,2,2,skip1<tag2<
                                    block<N,BN,2,tag1<SUB>>>>>>
    block<N,BN,stride,SUB>        = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUB>>>>>
    ares<N,SUB>      = relu<residual<block,N,affine,SUB>>
    ares_down<N,SUB> = relu<residual_down<block,N,affine,SUB>>
    alevel0 = ares_down<256>          alevel1 = ares<256,ares<256,ares_down<256>>>
    alevel2 = ares<128,ares<128,ares_down<128>>>
    alevel3 = ares<64,ares<64,ares<64,ares_down<64>>>>   alevel4 = ares<32,ares<32,ares<32>>>
    anet_type = loss_metric<fc_no_bias<128,avg_pool_everything<alevel0<alevel1<alevel2<alevel3<
                alevel4<max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>>>>>

From ``examples/dnn_mmod_face_detection_ex.cpp``::

    con5d<N> = con<N,5,5,2,2>     con5<N> = con<N,5,5,1,1>
    downsampler = relu<affine<con5d<32,relu<affine<con5d<32,relu<affine<con5d<16,SUB>>>>>>>>>
    rcon5<N>    = relu<affine<con5<45,SUB>>>
    net_type = loss_mmod<con<1,9,9,1,1,rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<
               pyramid_down<6>>>>>>>>
"""

from __future__ import annotations

from typing import Any

from facelens.convert.dlib_format import DlibNetwork, DlibStream

__all__ = ["Op", "check", "mmod_topology", "resnet_topology"]

Op = tuple[Any, ...]


def _con(n: int, k: int, s: int) -> Op:
    return (
        "layer",
        "con",
        {
            "num_filters": n,
            "kernel": (k, k),
            "stride": (s, s),
            "padding": (0, 0) if s != 1 else (k // 2, k // 2),
        },
    )


def _layer(kind: str, **expect: Any) -> Op:
    return ("layer", kind, expect)


def _block(n: int, stride: int) -> list[Op]:
    return [_layer("affine"), _con(n, 3, 1), _layer("relu"), _layer("affine"), _con(n, 3, stride)]


def _ares(n: int) -> list[Op]:
    return [_layer("relu"), _layer("add_prev", tag=1), *_block(n, 1), ("tag", 1)]


def _ares_down(n: int) -> list[Op]:
    return [
        _layer("relu"),
        _layer("add_prev", tag=2),
        _layer("avg_pool", kernel=(2, 2), stride=(2, 2), padding=(0, 0)),
        ("skip", 1),
        ("tag", 2),
        *_block(n, 2),
        ("tag", 1),
    ]


def resnet_topology() -> list[Op]:
    """``anet_type`` of dnn_face_recognition_ex.cpp, outermost wrapper first."""
    ops: list[Op] = [
        _layer("fc", num_outputs=128, bias=False),
        _layer("avg_pool", kernel=(0, 0), stride=(1, 1)),
    ]
    ops += _ares_down(256)
    ops += _ares(256) + _ares(256) + _ares_down(256)
    ops += _ares(128) + _ares(128) + _ares_down(128)
    ops += _ares(64) + _ares(64) + _ares(64) + _ares_down(64)
    ops += _ares(32) + _ares(32) + _ares(32)
    ops += [
        _layer("max_pool", kernel=(3, 3), stride=(2, 2), padding=(0, 0)),
        _layer("relu"),
        _layer("affine"),
        _con(32, 7, 2),
    ]
    return ops


def mmod_topology() -> list[Op]:
    """``net_type`` of dnn_mmod_face_detection_ex.cpp, outermost wrapper first."""

    def rcon5() -> list[Op]:
        return [_layer("relu"), _layer("affine"), _con(45, 5, 1)]

    ops: list[Op] = [_con(1, 9, 1), *rcon5(), *rcon5(), *rcon5()]
    for n in (32, 32, 16):
        ops += [_layer("relu"), _layer("affine"), _con(n, 5, 2)]
    return ops


def check(net: DlibNetwork, topology: list[Op], source: str) -> list[tuple[Op, Any]]:
    """Pair every wrapper of ``topology`` with what the file holds, innermost first.

    Returns (op, layer-or-None) pairs in inner-to-outer order: the order a graph is built in.

    Raises:
        ModelError: the file's layers or wrappers do not match the topology.
    """
    fail = DlibStream(b"", source).fail
    if len(net.wrapper_versions) != len(topology):
        raise fail(f"{len(net.wrapper_versions)} layer wrappers, the topology has {len(topology)}")
    layers = iter(net.layers)
    out: list[tuple[Op, Any]] = []
    for op, version in zip(reversed(topology), reversed(net.wrapper_versions), strict=True):
        if op[0] in ("tag", "skip"):
            if version != 1:
                raise fail(f"expected a {op[0]} layer (version 1), found version {version}")
            out.append((op, None))
            continue
        layer = next(layers, None)
        if layer is None or layer.kind != op[1]:
            raise fail(f"expected a {op[1]} layer, found {layer.kind if layer else 'nothing'}")
        for key, want in op[2].items():
            if key == "tag":
                continue
            got = layer.attrs.get(key)
            if got != want:
                raise fail(f"{op[1]} layer has {key}={got}, the topology says {want}")
        if layer.attrs.get("disabled"):
            raise fail(f"a disabled {op[1]} layer is not supported")
        out.append((op, layer))
    if next(layers, None) is not None:
        raise fail("more layers in the file than in the topology")
    return out

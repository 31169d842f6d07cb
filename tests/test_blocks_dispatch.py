"""The block dispatcher: every family's blocks are built by ``builder.build_blocks`` from
its kind table, the rounding rules are complete, and the registry knows no family."""
import ast
import dataclasses
import importlib
import inspect
import pickle

import pytest
from conftest import family_representative

import edgecnn
from edgecnn._keras import keras, layers
from edgecnn.models import builder, get_model_spec, list_models, registry
from edgecnn.models.blocks import BatchNorm

FAMILY_MODULES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "efficientnet", "shufflenet",
                  "shufflenet_v2", "xception")
# option sets that change which blocks a family builds
OPTIONS = {"mobilenet_v3_small": [{}, {"minimalistic": True}],
           "shufflenet": [{"groups": 1}, {"groups": 8}]}
# family -> the block kind its stage table declares
KIND = {"MobileNet V1": "ds", "MobileNet V2": "ir", "MobileNet V3 Large": "ir",
        "MobileNet V3 Small": "ir", "EfficientNet": "mbconv", "EfficientNet-Lite": "mbconv",
        "ShuffleNet V1": "shuffle", "ShuffleNet V2": "shuffle_v2", "Xception": "xception"}


def _cases():
    return [(name, options) for name in list_models() if family_representative(name)
            for options in OPTIONS.get(name, [{}])]


@pytest.mark.parametrize("name,options", _cases(), ids=lambda v: str(v))
def test_every_block_goes_through_the_dispatcher(name, options, monkeypatch):
    """One call of a kind's function per block of the stage table (``describe``), and the
    model's layers are those calls' layers plus the family's stem and head."""
    calls = []
    for kind, function in builder.BLOCK_KINDS.items():
        def counted(x, block, *args, _function=function, **kwargs):
            calls.append(block.kind)
            return _function(x, block, *args, **kwargs)
        monkeypatch.setitem(builder.BLOCK_KINDS, kind, counted)
    spec = get_model_spec(name)
    edgecnn.create_model(name, input_size=max(spec.min_input, 64), **options)
    table = spec.describe(alpha=1.0, **{**spec.options, **options})["blocks"]
    assert len(calls) == sum(row["repeats"] for row in table)
    assert set(calls) == {KIND[spec.family]}
    keras.backend.clear_session()


def test_every_kind_serves_a_family():
    assert set(KIND.values()) == set(builder.BLOCK_KINDS)
    assert {get_model_spec(name).family for name in list_models()} == set(KIND)


def test_unknown_kind_names_the_known_kinds():
    block = builder.Block("fancy", 1, 0, 0, 8, 8, 3, 1, None, None, "relu")
    x = layers.Input((8, 8, 8))
    with pytest.raises(ValueError, match="unknown block kind 'fancy'; known kinds: ds, ir, "
                                         "mbconv, shuffle, shuffle_v2, xception"):
        builder.build_blocks(x, [block], names=lambda b: {}, bn=BatchNorm())


def test_rounding_is_always_complete():
    for f in dataclasses.fields(builder.Rounding):
        if f.name != "out":
            assert f.default is not None and f.default is not dataclasses.MISSING, f.name
    for name in FAMILY_MODULES:
        module = importlib.import_module(f"edgecnn.models.{name}")
        roundings = [v for v in vars(module).values() if isinstance(v, builder.Rounding)]
        for rounding in roundings:
            assert all(callable(getattr(rounding, f.name))
                       for f in dataclasses.fields(rounding) if f.type.startswith("Callable"))


def test_extra_fields_read_as_attributes():
    row = builder.StageRow("xception", 1, 3, 2, 1, 64, extra={"filters": (32, 64)})
    assert row.filters == (32, 64)
    with pytest.raises(AttributeError):
        row.groups
    block = builder.decode([row], 0.5, 16, builder.Rounding(out=lambda c, a: int(c * a)))[0]
    assert block.filters == (32, 64) and block.out == 32
    assert pickle.loads(pickle.dumps(block)) == block  # plain data, e.g. for a process pool
    with pytest.raises(AttributeError):
        block.groups


def test_registry_imports_no_family():
    """timm's layering: the registry knows no family (no import of them anywhere in it,
    not even inside a function)."""
    tree = ast.parse(inspect.getsource(registry))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported |= {node.module or ""} | {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    assert not imported & {*FAMILY_MODULES, "families"}
    nested_relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                       and n.level > 0 and n.col_offset > 0]
    assert not nested_relative  # no function-level import hiding a cycle

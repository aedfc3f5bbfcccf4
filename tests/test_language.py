"""The language: each construct parses to the expected syntax tree and lowers to the expected
layers, names and shapes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netdsl
from netdsl import ast
from netdsl.parser import grammar_path, parse


def names(text: str, **params) -> list[str]:
    return netdsl.loads(text, **params).layers


def shape(net, name):
    return net.layer(name).shape


def test_grammar_is_lalr_without_conflicts():
    """strict=True makes Lark refuse any shift/reduce or terminal collision."""
    from lark import Lark
    Lark(grammar_path().read_text(), parser="lalr", strict=True, start=["start", "expr"])


def test_syntax_tree_of_each_construct():
    prog = parse("""
        block b(x, y = 2) { conv(x * y, 3x1) }
        net n(k = 4) {
            input 3x32x32
            c: conv(8, 3, pad=same, bias=false)
            concat { relu | b(k) }
            s: repeat 2 { relu }
            aux: train head from c { linear(-(k // 2) + 5) }
            g: { identity }
        }""")
    block, net = prog.definitions
    assert block == ast.BlockDef("b", (ast.Param("x"), ast.Param("y", ast.IntLit(2))), (
        ast.Call("conv", (ast.Arg(None, ast.BinOp("*", ast.NameRef("x"), ast.NameRef("y"))),
                          ast.Arg(None, ast.ShapeLit((3, 1))))),))
    assert net.body[0] == ast.InputDecl((3, 32, 32))
    assert net.body[1] == ast.Call("conv", (ast.Arg(None, ast.IntLit(8)), ast.Arg(None, ast.IntLit(3)),
                                            ast.Arg("pad", ast.NameRef("same")),
                                            ast.Arg("bias", ast.BoolLit(False))), label="c")
    assert net.body[2] == ast.Join("concat", (), ((ast.Call("relu"),),
                                              (ast.Call("b", (ast.Arg(None, ast.NameRef("k")),)),)))
    assert net.body[3] == ast.Repeat(ast.IntLit(2), (ast.Call("relu"),), label="s")
    head = net.body[4]
    assert (head.train_only, head.source, head.label) == (True, "c", "aux")
    assert head.body[0].args[0].value == ast.BinOp("+", ast.Neg(ast.BinOp("//", ast.NameRef("k"), ast.IntLit(2))),
                                                   ast.IntLit(5))
    assert net.body[5] == ast.Group((ast.Call("identity"),), label="g")


def test_spans_point_at_the_source():
    prog = parse("net n {\n  input 3x8x8\n  c1: conv(8,\n    3)\n}")
    call = prog.definitions[0].body[1]
    assert (call.label_span.line, call.label_span.column) == (3, 3)
    assert (call.name_span.line, call.name_span.column) == (3, 7)
    assert (call.span.line, call.span.column, call.span.end_line, call.span.end_column) == (3, 7, 4, 7)


def test_literals():
    net = netdsl.loads("net n { input 3x9x9  conv(4, 3×3, stride=(1, 1), pad=1) dropout(.25) leaky_relu(1e-2) }")
    assert net.layer("conv1").attrs["kernel"] == (3, 3)
    assert net.layer("dropout1").attrs["p"] == 0.25
    assert net.layer("leaky_relu1").attrs["slope"] == 0.01


def test_comments_and_layout_do_not_matter():
    a = netdsl.loads("net n { input 3x8x8 conv(4, 3) relu }")
    b = netdsl.loads("# top\nnet n {   # after brace\n  input 3x8x8\n\n  conv(4,\n       3)   # a conv\n  relu\n}\n")
    assert [(n, a.layer(n).shape) for n in a.layers] == [(n, b.layer(n).shape) for n in b.layers]


def test_automatic_names_count_per_op_and_skip_labels():
    assert names("net n { input 8 relu relu1: relu relu linear(4) }") == ["relu2", "relu1", "relu3", "linear1"]


def test_block_instances_are_scopes():
    net = netdsl.loads("block b(c) { x: conv(c, 1) relu }\nnet n { input 3x8x8 first: b(4) b(6) }")
    assert net.layers == ["first.x", "first.relu1", "b1.x", "b1.relu1"]
    assert shape(net, "b1.x") == (6, 8, 8)
    assert net.scopes["first"].title == "b(4)"


def test_block_arithmetic_defaults_and_keywords():
    net = netdsl.loads("block b(c, k = c / 2 + 1) { conv(c * 2, k, pad=k // 2) }\n"
                       "net n { input 3x16x16 x: b(4) y: b(c=2, k=1) }")
    assert net.layer("x.conv1").attrs["kernel"] == (3, 3)
    assert shape(net, "x.conv1") == (8, 16, 16)
    assert shape(net, "y.conv1") == (4, 16, 16)


def test_nested_blocks():
    net = netdsl.loads("block inner(c) { conv(c, 1) }\nblock outer(c) { a: inner(c) b: inner(c + 1) }\n"
                       "net n { input 3x4x4 o: outer(2) }")
    assert net.layers == ["o.a.conv1", "o.b.conv1"]
    assert shape(net, "o.b.conv1") == (3, 4, 4)


def test_concat_branches_are_numbered_scopes():
    net = netdsl.loads("net n { input 3x8x8 concat { conv(2, 1) | conv(3, 1) relu | maxpool(3, stride=1, pad=1) } }")
    assert net.layers == ["branch1.conv1", "branch2.conv1", "branch2.relu1", "branch3.maxpool1", "concat1"]
    assert shape(net, "concat1") == (8, 8, 8)


def test_labelled_join_scopes_its_branches():
    net = netdsl.loads("net n { input 3x8x8 mix: concat { | conv(2, 1) | conv(3, 1) } }")
    assert net.layers == ["mix.branch1.conv1", "mix.branch2.conv1", "mix"]


def test_residual_add():
    net = netdsl.loads("net n { input 8x8x8 res: add { identity | conv(8, 3, pad=1) relu conv(8, 3, pad=1) } relu }")
    assert shape(net, "res") == (8, 8, 8)
    assert net.layer("res").input_names == ["res.branch1.identity1", "res.branch2.conv2"]


def test_repeat_inline_and_labelled():
    net = netdsl.loads("net n { input 3x8x8 repeat 2 { conv(4, 3, pad=1) relu } s: repeat 2 { conv(4, 1) } }")
    assert net.layers == ["conv1", "relu1", "conv2", "relu2", "s.1.conv1", "s.2.conv1"]
    assert net.scopes["s"].title == "repeat 2"


def test_repeat_count_from_a_parameter():
    text = ("block stage(c, n) { repeat n { conv(c, 3, pad=1) } maxpool(2) }\n"
            "net n(k = 3) { input 3x8x8 s: stage(4, k) }")
    assert len(names(text)) == 4
    assert len(names(text, k=1)) == 2


def test_heads_tap_a_layer_and_the_main_chain_goes_on():
    net = netdsl.loads("net n(classes = 5) { input 8 a: linear(6) aux: train head from a { linear(classes) } "
                       "b: linear(7) side: head { linear(2) } }")
    assert [(o.name, o.layer.name, o.train_only) for o in net.outputs] == [
        ("b", "b", False), ("aux", "aux.linear1", True), ("side", "side.linear1", False)]
    assert net.layer("b").input_names == ["a"]
    assert net.layer("side.linear1").input_names == ["b"]
    assert net.total_params(train=False) == (8 * 6 + 6) + (6 * 7 + 7) + (7 * 2 + 2)
    assert net.total_params() == net.total_params(train=False) + 6 * 5 + 5


def test_head_from_a_block_instance_taps_its_output():
    net = netdsl.loads("block b { conv(4, 1) relu }\nnet n { input 3x4x4 x: b y: b aux: head from x { flatten } }")
    assert net.layer("aux.flatten1").input_names == ["x.relu1"]


def test_group_scope():
    assert names("net n { input 3 stem: { linear(4) relu } linear(2) }") == ["stem.linear1", "stem.relu1", "linear1"]


def test_symbols_pass_through_block_arguments():
    net = netdsl.loads("block b(p) { conv(4, 3, pad=p) }\nnet n { input 3x8x8 b(same) }")
    assert shape(net, "b1.conv1") == (4, 8, 8)


def test_vector_input():
    net = netdsl.loads("net mlp(hidden = 32) { input 784 linear(hidden) relu linear(10) softmax }")
    assert shape(net, "softmax1") == (10,)


def test_networkx_graph():
    net = netdsl.load("nets/googlenet.net")
    g = net.graph
    import networkx as nx
    assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
    assert g.number_of_nodes() == len(net.layers) + 1
    assert g.in_degree("inception3a.concat1") == 4
    assert g.nodes["conv1"]["shape"] == (64, 112, 112)
    assert g.edges["inception3a.branch4.relu1", "inception3a.concat1"]["index"] == 3


# --- property tests ----------------------------------------------------------------------

LAYER = st.sampled_from(["relu", "conv(4, 1)", "conv(4, 3, pad=1)", "maxpool(3, stride=1, pad=1)",
                         "batchnorm", "identity", "conv(2, 3, pad=same)", "lrn(3)"])


GROUP_LABELS = itertools.count()


@st.composite
def chains(draw, depth=0, in_repeat=False):
    items = draw(st.lists(LAYER if depth > 2 else st.one_of(LAYER, st.deferred(lambda: joins(depth + 1, in_repeat))),
                          min_size=1, max_size=4))
    return " ".join(items)


@st.composite
def joins(draw, depth, in_repeat):
    # a group is labelled, and a label inside an unlabelled repeat would be made once a pass
    kind = draw(st.sampled_from(["concat", "repeat", "add"] + ["group"] * (not in_repeat)))
    if kind == "repeat":
        return f"repeat {draw(st.integers(1, 3))} {{ {draw(chains(depth, True))} }}"
    if kind == "group":  # each label new, so none clashes
        return f"g{next(GROUP_LABELS)}: {{ {draw(chains(depth, in_repeat))} }}"
    if kind == "add":
        return f"add {{ conv(4, 1) {draw(chains(depth, in_repeat))} conv(4, 1) | conv(4, 1) }}"
    branches = draw(st.lists(chains(depth, in_repeat), min_size=2, max_size=3))
    return "concat { " + " | ".join(branches) + " }"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=chains(), size=st.integers(4, 12))
def test_generated_valid_nets_check_and_keep_spatial_size(body, size):
    """Every layer in the pool keeps H and W, so any composition of them must check, and
    every layer's output keeps the input's spatial size."""
    net = netdsl.loads(f"net g {{ input 3x{size}x{size} {body} }}")
    assert all(net.layer(n).shape[1:] == (size, size) for n in net.layers)
    assert len(set(net.layers)) == len(net.layers)


def test_head_with_a_single_call_takes_the_heads_name():
    net = netdsl.loads("block clf(k) { flatten fc: linear(k) }\n"
                       "net n { input 4x2x2 a: relu aux: train head from a clf(3) b: flatten probe: head linear(2) }")
    assert [(o.name, o.layer.name, o.train_only) for o in net.outputs] == [
        ("b", "b", False), ("aux", "aux.fc", True), ("probe", "probe", False)]
    assert net.scopes["aux"].kind == "block" and net.scopes["aux"].train_only
    assert net.layer("probe").input_names == ["b"] and net.layer("aux.flatten1").input_names == ["a"]


def test_head_from_a_dotted_path():
    net = netdsl.loads("net n { input 3x8x8 s: repeat 2 { conv(4, 1) relu } "
                       "h: head from s.1 { flatten } g: head from s.2.conv1 { flatten } }")
    assert net.layer("h.flatten1").input_names == ["s.1.relu1"]
    assert net.layer("g.flatten1").input_names == ["s.2.conv1"]


# --- regressions from review ---------------------------------------------------------------

def test_empty_repeat_is_the_identity_and_never_spins():
    net = netdsl.loads("net n { input 3x8x8 repeat 1000000000 { } relu }")
    assert net.layers == ["relu1"]
    # bodies that add no layer stop after two passes instead of a billion
    net = netdsl.loads("block nothing { }\nnet n { input 3x8x8 r: repeat 1000000000 { g: {} nothing } relu }")
    assert net.layers == ["relu1"]


def test_a_scope_stands_for_its_main_chain_not_a_head_inside_it():
    net = netdsl.loads("block b { conv(8, 1) h: head { global_avgpool flatten linear(3) } }\n"
                       "net n { input 3x8x8 b1: b p: head from b1 { relu } relu }")
    assert net.layer("p.relu1").input_names == ["b1.conv1"]
    assert net.layer("relu1").input_names == ["b1.conv1"]
    (block,) = net.summary().blocks
    assert block.output_shape == [8, 8, 8]


def test_an_empty_scope_stands_for_its_input():
    net = netdsl.loads("net n { input 4 a: relu g: { } h: head from g { linear(2) } }")
    assert net.layer("h.linear1").input_names == ["a"]


def test_nested_heads_are_listed_outermost_first():
    net = netdsl.loads("net n { input 4 relu t: train head { linear(5) h: head { linear(3) } } }")
    assert [o.name for o in net.outputs] == ["relu1", "t", "t.h"]
    assert all(o.train_only for o in net.outputs[1:])  # a head inside a train head is training-only


def test_parameter_values_from_python():
    net = netdsl.loads("net n(c = 8, p = 0) { input 3x8x8 conv(c, 3, pad=p) }", p="same")
    assert net.layer("conv1").shape == (8, 8, 8)
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads("net n(c = 8) { input 3x8x8 conv(c, 3) }", c=None)
    assert [d.code for d in err.value.diagnostics] == ["E305"]


def test_a_default_may_be_a_word_that_names_something_elsewhere():
    net = netdsl.loads("block b(pad = same) { conv(4, 3, pad=pad) }\nnet n(same = 1) { input 3x8x8 b }")
    assert net.layer("b1.conv1").shape == (4, 8, 8)


def test_max_layers_counts_layers_not_the_input():
    assert len(netdsl.load("nets/lenet5.net", max_layers=12).layers) == 12
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.load("nets/lenet5.net", max_layers=11)
    assert [d.code for d in err.value.diagnostics] == ["E407"]
    with pytest.raises(ValueError):
        netdsl.load("nets/lenet5.net", max_layers=0)


def test_summary_never_mixes_deploy_and_training_in_one_row():
    net = netdsl.loads("block withaux(c) { conv(c, 3, pad=1) relu aux: train head { global_avgpool flatten linear(3) } "
                       "conv(c, 1) }\nnet n { input 3x8x8 s1: withaux(4) s2: withaux(4) }")
    rows = {name: (params, train) for name, _, _, params, _, _, train in net.summary().rows(depth=1)}
    assert rows["s1"] == (4 * 3 * 9 + 4 + 4 * 4 + 4, False)
    assert rows["s1.aux"] == (4 * 3 + 3, True)
    t = net.summary().totals
    assert sum(p for p, train in rows.values() if not train) == t["params_deploy"]
    assert sum(p for p, _ in rows.values()) == t["params"]


def test_totals_split_whenever_a_layer_is_training_only():
    table = netdsl.loads("net n { input 3x64x64 conv(8, 3) t: train head { maxpool(2) flatten } }").summary().table()
    assert "deploy" in table and "training" in table


def test_a_blocks_from_cannot_reach_the_callers_layers():
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads("block b { h: head from stem { flatten } relu }\nnet n { input 3x8x8 stem: conv(4, 3) b }")
    assert [d.code for d in err.value.diagnostics] == ["E202"]


def test_keywords_cannot_name_blocks():
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads("block head { relu }\nnet n { input 4 relu }")
    assert [d.code for d in err.value.diagnostics] == ["E203"]


# --- joins are registry ops --------------------------------------------------------------

def _errors(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads(text)
    return [(d.code, d.message, d.help or "") for d in err.value.diagnostics]


def test_an_unknown_join_names_the_joins_there_are():
    (code, message, help_), = _errors("net n { input 3x8x8 mull { identity | relu } }")
    assert (code, message, help_) == ("E201", "no join named `mull`", "did you mean `mul`?")
    (code, message, help_), = _errors("net n { input 3x8x8 zzz { identity | relu } }")
    assert code == "E201" and all(f"`{j}`" in help_ for j in ("concat", "add", "mul"))


def test_an_op_or_a_block_is_not_a_join_and_a_join_is_not_a_call():
    assert _errors("net n { input 3x8x8 relu { identity | relu } }")[0][:2] == ("E201", "`relu` is an op, not a join")
    assert _errors("block b { relu }\nnet n { input 3x8x8 b { identity | relu } }")[0][:2] == \
        ("E201", "`b` is an op, not a join")
    code, message, help_ = _errors("net n { input 3x8x8 relu concat relu }")[0]
    assert (code, message) == ("E201", "`concat` is a join: it takes branches") and "concat { a | b }" in help_


def test_unknown_joins_inside_blocks_are_reported_once_even_unused():
    assert [c for c, _, _ in _errors("block b { mull { identity | relu } }\nnet n { input 3x8x8 b b }")] == ["E201"]


def test_join_arguments_are_bound_like_an_ops():
    assert _errors("net n { input 3x8x8 concat(dim=1) { relu | relu } }")[0][:2] == \
        ("E301", "`concat` has no argument `dim`")


def test_a_group_needs_a_label():
    # `relu { ... }` reads as a join named relu, of one branch
    assert sorted(c for c, _, _ in _errors("net n { input 3x8x8 relu { relu } }")) == ["E201", "E207"]
    (code, _, help_), = _errors("net n { input 3x8x8 { relu } }")
    assert code == "E100" and "a group needs a label" in help_


def test_mul_broadcasts_sizes_of_one():
    net = netdsl.loads("net n { input 4x6x6 se: mul { identity | global_avgpool conv(4, 1) sigmoid } }")
    assert net.layer("se").shape == (4, 6, 6) and net.layer("se").input_names == ["se.branch1.identity1",
                                                                                   "se.branch2.sigmoid1"]
    code, message, _ = _errors("net n { input 4x6x6 mul { identity | conv(3, 1) } }")[0]
    assert code == "E403" and "does not broadcast" in message
    assert _errors("net n { input 4x6x6 mul { identity | flatten } }")[0][0] == "E403"


def test_layers_know_their_users_and_scopes():
    net = netdsl.load("nets/googlenet.net")
    relu = net.layer("inception3a.branch4.relu1")
    assert [u.name for u in relu.users] == ["inception3a.concat1"]
    assert relu.scope is net.scopes["inception3a.branch4"] and relu.scope.parent is net.scopes["inception3a"]
    assert relu.local == "relu1" and [s.local for s in net.scopes["inception3a"].children] == \
        ["branch1", "branch2", "branch3", "branch4"]
    assert net.ir.input.users == [net.layer(net.layers[0])]


def test_the_input_sizes_may_be_expressions_of_the_nets_parameters():
    """`input (3, res, res)`: EfficientNet's B1 to B7 differ in resolution as well as in width and
    depth; the sizes are evaluated with the net's parameters, so one file serves them all."""
    from netdsl.parser import parse
    from netdsl.printer import format_source

    text = "net n(res = 32, c = 3) { input (c, res, res + 1) conv(8, 3, stride=2) }"
    net = netdsl.loads(text)
    assert net.input_shape == (3, 32, 33) and net.layers[-1:] == ["conv1"]
    assert netdsl.loads(text, res=17).input_shape == (3, 17, 18)
    assert netdsl.loads("net n(n = 10) { input (n * 2) linear(3) }").input_shape == (20,)
    assert parse(format_source(text)) == parse(text) and "input (c, res, res + 1)" in format_source(text)
    with pytest.raises(netdsl.NetDSLError) as e:
        netdsl.loads("net n(res = 2.5, ok = true) {\n input (3, res, ress, ok)\n relu }")
    # every size's mistake at once, each at its own column
    assert [(d.code, d.span.column) for d in e.value.diagnostics] == [("E305", 12), ("E202", 17), ("E305", 23)]
    with pytest.raises(netdsl.NetDSLError) as e:
        netdsl.loads("net n(k = 0) { input (3, k, 4) relu }")
    assert [d.code for d in e.value.diagnostics] == ["E306"]  # a size of 0, as `input 3x0x4`

"""reference.tree_encode and RecursiveNN against explicit torch ops and a recursive oracle."""

from __future__ import annotations

import sys

import pytest
import torch

from reference import RecursiveNN, tree_encode

D = 4


@pytest.fixture()
def setup() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    embed = {w: torch.randn(D, generator=g) for w in ("the", "cat", "sat", "down")}
    return embed, torch.randn(D, 2 * D, generator=g) / 2, torch.randn(D, generator=g)


def test_leaf_is_its_embedding(setup) -> None:
    embed, W, b = setup
    torch.testing.assert_close(tree_encode("cat", embed, W, b), embed["cat"])


def test_two_level_tree_by_hand(setup) -> None:
    embed, W, b = setup
    tree = (("the", "cat"), ("sat", "down"))
    left = torch.tanh(W[:, :D] @ embed["the"] + W[:, D:] @ embed["cat"] + b)
    right = torch.tanh(W[:, :D] @ embed["sat"] + W[:, D:] @ embed["down"] + b)
    root = torch.tanh(W[:, :D] @ left + W[:, D:] @ right + b)
    got = tree_encode(tree, embed, W, b)
    assert got.shape == (D,)
    torch.testing.assert_close(got, root)


def test_lists_equal_tuples(setup) -> None:
    embed, W, b = setup
    as_tuple = ("the", ("cat", ("sat", "down")))
    as_list = ["the", ["cat", ("sat", "down")]]
    torch.testing.assert_close(tree_encode(as_list, embed, W, b), tree_encode(as_tuple, embed, W, b))


def test_order_matters(setup) -> None:
    embed, W, b = setup
    assert not torch.allclose(
        tree_encode(("the", "cat"), embed, W, b), tree_encode(("cat", "the"), embed, W, b)
    )


def _left_deep(depth: int, words: list[str]):
    tree = words[0]
    for i in range(depth):
        tree = (tree, words[(i + 1) % len(words)])
    return tree


def _recursive_oracle(tree, embed, W, b):
    if isinstance(tree, str):
        return embed[tree]
    return torch.tanh(W @ torch.cat([_recursive_oracle(t, embed, W, b) for t in tree]) + b)


def test_depth_200_against_recursive_oracle(setup) -> None:
    embed, W, b = setup
    tree = _left_deep(200, list(embed))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 5000))
    try:
        expected = _recursive_oracle(tree, embed, W, b)
    finally:
        sys.setrecursionlimit(old)
    torch.testing.assert_close(tree_encode(tree, embed, W, b), expected)


def test_depth_200_right_deep_against_loop(setup) -> None:
    embed, W, b = setup
    words = list(embed)
    tree = words[0]
    expected = embed[words[0]]
    for i in range(200):
        w = words[(i + 1) % len(words)]
        tree = (w, tree)
        expected = torch.tanh(W @ torch.cat([embed[w], expected]) + b)
    torch.testing.assert_close(tree_encode(tree, embed, W, b), expected)


def test_depth_5000_without_raising_the_recursion_limit(setup) -> None:
    embed, W, b = setup
    limit = sys.getrecursionlimit()
    tree = _left_deep(5000, list(embed))
    expected = embed["the"]
    words = list(embed)
    for i in range(5000):
        expected = torch.tanh(W @ torch.cat([expected, embed[words[(i + 1) % len(words)]]]) + b)
    torch.testing.assert_close(tree_encode(tree, embed, W, b), expected)
    assert sys.getrecursionlimit() == limit


@pytest.mark.parametrize(
    "bad,exc",
    [
        (("the", "cat", "sat"), ValueError),
        (("the",), ValueError),
        (("the", 3), ValueError),
        ((("the", None), "cat"), ValueError),
        (("the", "dog"), KeyError),
        (42, ValueError),
    ],
)
def test_bad_trees_raise(setup, bad, exc) -> None:
    embed, W, b = setup
    with pytest.raises(exc):
        tree_encode(bad, embed, W, b)


def test_cycle_raises(setup) -> None:
    embed, W, b = setup
    loop: list = ["the"]
    loop.append(loop)
    with pytest.raises(ValueError, match="cycle"):
        tree_encode(loop, embed, W, b)


def test_float64_and_numpy(setup) -> None:
    embed, W, b = setup
    embed64 = {w: v.double().numpy() for w, v in embed.items()}
    got = tree_encode(("the", "cat"), embed64, W.double().numpy(), b.double().numpy())
    assert got.dtype == torch.float64
    torch.testing.assert_close(got.float(), tree_encode(("the", "cat"), embed, W, b))


def test_recursive_nn_module_trains() -> None:
    model = RecursiveNN(["a", "b", "c"], dim=3, n_classes=2, seed=0)
    tree = (("a", "b"), "c")
    expected = torch.tanh(
        model.W @ torch.cat([torch.tanh(model.W @ torch.cat([model.embedding.weight[0], model.embedding.weight[1]]) + model.b), model.embedding.weight[2]])
        + model.b
    )
    logits = model(tree)
    assert logits.shape == (2,)
    torch.testing.assert_close(logits, model.head(expected))
    torch.nn.functional.cross_entropy(logits[None], torch.tensor([1])).backward()
    for p in (model.W, model.b, model.embedding.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert RecursiveNN(["a"], dim=3)("a").shape == (3,)

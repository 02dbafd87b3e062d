"""Exercise 11.4.c (second half): a recursive neural network over binary trees."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from reference.rnn import ArrayLike, as_tensor

__all__ = ["RecursiveNN", "Tree", "tree_encode"]

#: A leaf word, or a pair (left, right) of trees; tuples and lists of length 2 both count.
Tree = str | tuple["Tree", "Tree"] | list["Tree"]


def _children(node: object) -> tuple[object, object]:
    if isinstance(node, (tuple, list)):
        if len(node) != 2:
            raise ValueError(
                f"a tree node must be a str leaf or a pair (left, right); got a "
                f"{type(node).__name__} of length {len(node)}"
            )
        return node[0], node[1]
    raise ValueError(
        f"a tree node must be a str leaf or a pair (left, right); got {type(node).__name__} "
        f"{node!r:.60}"
    )


def tree_encode(
    tree: Tree, embed: Mapping[str, ArrayLike], W: ArrayLike, b: ArrayLike
) -> torch.Tensor:
    """Encode a binary tree bottom-up into its root vector.

    Parameters
    ----------
    tree : str or pair
        A leaf word, or ``(left, right)`` (tuple or list) of trees, nested to any depth.
    embed : mapping
        Word -> (d,) vector (tensor or numpy array).
    W : torch.Tensor or numpy.ndarray
        (d, 2d) composition weights.
    b : torch.Tensor or numpy.ndarray
        (d,) bias.

    Returns
    -------
    torch.Tensor
        p of shape (d,), the root's vector, in W's dtype and on the autograd graph of W, b and
        the embeddings.

    Raises
    ------
    ValueError
        For a node that is neither a str nor a pair, and for a cyclic structure.
    KeyError
        For a leaf word missing from ``embed``.

    Notes
    -----
    A leaf's vector is ``embed[word]``; a pair's is tanh(W [v_left ; v_right] + b). The
    traversal is a post-order walk with an explicit stack, not recursion, so a degenerate tree
    of depth 10^4 or more needs no change to ``sys.getrecursionlimit``.
    """
    W = as_tensor(W)
    dtype = W.dtype if W.is_floating_point() else torch.get_default_dtype()
    W, b = W.to(dtype), as_tensor(b, dtype)

    def leaf(word: str) -> torch.Tensor:
        try:
            vec = embed[word]
        except KeyError:
            raise KeyError(f"leaf word {word!r} has no embedding") from None
        return as_tensor(vec, dtype).reshape(-1)

    # Stack items: (node, expanded). An expanded pair's children are already on `values`.
    stack: list[tuple[object, bool]] = [(tree, False)]
    values: list[torch.Tensor] = []
    open_pairs: set[int] = set()  # ids of pairs being encoded, to catch a tree that holds itself
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, str):
            values.append(leaf(node))
        elif expanded:
            right = values.pop()
            left = values.pop()
            values.append(torch.tanh(W @ torch.cat([left, right]) + b))
            open_pairs.discard(id(node))
        else:
            left_node, right_node = _children(node)
            if id(node) in open_pairs:
                raise ValueError("the tree contains itself (a cycle), so it has no encoding")
            open_pairs.add(id(node))
            stack.append((node, True))
            # Pushed right first so the left child is encoded (and lands on `values`) first.
            stack.append((right_node, False))
            stack.append((left_node, False))
    return values[0]


class _EmbeddingView(Mapping[str, torch.Tensor]):
    """Word -> row of an ``nn.Embedding``, as the mapping that :func:`tree_encode` expects."""

    def __init__(self, index: dict[str, int], table: nn.Embedding) -> None:
        self._index = index
        self._table = table

    def __getitem__(self, word: str) -> torch.Tensor:
        return self._table.weight[self._index[word]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class RecursiveNN(nn.Module):
    """A recursive NN: shared composition weights applied at every node of a binary tree.

    Parameters
    ----------
    vocab : sequence of str
        The leaf words; each gets a learned (d,) embedding.
    dim : int
        Vector size d.
    n_classes : int, optional
        If given, a linear head maps the root vector to (n_classes,) logits.
    seed : int, optional
        If given, seeds a private generator for the initial weights.

    Notes
    -----
    ``forward(tree)`` returns the root vector p (d,) from :func:`tree_encode`, or the head's
    logits (n_classes,) when there is a head. W is (d, 2d) and b is (d,), initialised like a
    linear layer with 2d inputs.
    """

    def __init__(
        self, vocab: Sequence[str], dim: int, n_classes: int | None = None, seed: int | None = None
    ) -> None:
        super().__init__()
        self.index: dict[str, int] = {}
        for word in vocab:
            self.index.setdefault(word, len(self.index))
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        bound = 1.0 / np.sqrt(2 * dim)
        self.embedding = nn.Embedding(len(self.index), dim)
        self.W = nn.Parameter(torch.empty(dim, 2 * dim))
        self.b = nn.Parameter(torch.empty(dim))
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, 1.0, generator=gen)
            self.W.uniform_(-bound, bound, generator=gen)
            self.b.uniform_(-bound, bound, generator=gen)
        self.head: nn.Linear | None = None
        if n_classes is not None:
            self.head = nn.Linear(dim, n_classes)
            with torch.no_grad():
                self.head.weight.uniform_(-1.0 / np.sqrt(dim), 1.0 / np.sqrt(dim), generator=gen)
                self.head.bias.zero_()

    def embed(self) -> Mapping[str, torch.Tensor]:
        """The word -> vector mapping handed to :func:`tree_encode`.

        Returns
        -------
        Mapping
            Live view of the embedding table, so gradients reach it.
        """
        return _EmbeddingView(self.index, self.embedding)

    def forward(self, tree: Tree) -> torch.Tensor:
        """Encode ``tree``; apply the head if there is one.

        Parameters
        ----------
        tree : str or pair
            As in :func:`tree_encode`.

        Returns
        -------
        torch.Tensor
            (d,) root vector, or (n_classes,) logits.
        """
        p = tree_encode(tree, self.embed(), self.W, self.b)
        return p if self.head is None else self.head(p)

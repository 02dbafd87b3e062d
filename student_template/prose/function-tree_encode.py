def tree_encode(tree, embed, W, b):
    """Encode a binary tree bottom-up with a recursive neural network.

    A leaf's vector is ``embed[word]``; a pair's vector is ``tanh(W [v_left; v_right] + b)``
    where ``[v_left; v_right]`` stacks the children's vectors into one vector of length 2d.

    Parameters
    ----------
    tree : str or tuple
        A leaf (a word, ``str``) or a pair ``(left, right)`` of trees, nested to any depth,
        e.g. ``(("the", "cat"), "sat")``.
    embed : dict of str to torch.Tensor, each of shape (d,)
        The vector of each leaf word.
    W : torch.Tensor, shape (d, 2*d)
        The composition weights.
    b : torch.Tensor, shape (d,)
        The composition bias.

    Returns
    -------
    p : torch.Tensor, shape (d,)
        The root's vector.
    """
    raise NotImplementedError("tree_encode: not implemented yet")

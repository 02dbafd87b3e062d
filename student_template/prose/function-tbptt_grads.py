def tbptt_grads(x, y, params, k):
    """Gradients of a many-to-one RNN classifier with truncated back-propagation through time.

    ``h_0 = 0``, ``h_t = tanh(W h_{t-1} + U x_t + b)``, ``logits = h_T V^T + c``,
    ``L = cross_entropy(logits, y)`` averaged over the batch. Gradients flow back through the
    last ``k`` steps only: h_{T-k} is held constant. ``k >= T`` is full back-propagation.

    Parameters
    ----------
    x : torch.Tensor, shape (T, B, D)
        The inputs.
    y : torch.Tensor, shape (B,), int64
        The class labels.
    params : dict of str to torch.Tensor
        ``"W"`` (Hd, Hd), ``"U"`` (Hd, D), ``"b"`` (Hd,), ``"V"`` (C, Hd), ``"c"`` (C,).
        Must not be changed.
    k : int
        The truncation window, ``k >= 1``.

    Returns
    -------
    grads : dict of str to torch.Tensor
        The same five keys; ``grads[name]`` is dL/d params[name] with the shape of
        ``params[name]``.
    """
    raise NotImplementedError("tbptt_grads: not implemented yet")

def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    """The norms of the gradients of the loss with respect to every hidden state.

    Run the RNN of ``rnn_forward``, compute ``L = loss_fn(h_T)`` and use autograd to get
    dL/dh_t for every t = 1..T (keep the hidden states and ask autograd for their gradients).

    Parameters
    ----------
    x : torch.Tensor, shape (T, 1, D)
        The inputs (batch size 1).
    h0 : torch.Tensor, shape (1, Hd)
        The initial hidden state.
    W : torch.Tensor, shape (Hd, Hd)
    U : torch.Tensor, shape (Hd, D)
    b : torch.Tensor, shape (Hd,)
        The RNN's parameters, as in ``rnn_forward``.
    loss_fn : callable
        Maps h_T, shape (1, Hd), float32 or float64, to a scalar tensor.
    activation : {"tanh", "sigmoid"}, default "tanh"

    Returns
    -------
    g : torch.Tensor, shape (T,)
        ``g[t-1] = ||dL/dh_t||_2``.
    """
    raise NotImplementedError("hidden_grad_norms: not implemented yet")

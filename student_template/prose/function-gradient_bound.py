def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    """The right side of equation (1) of the sheet, for every t = 1..T.

    ``r[t-1] = ||dL/dh_T||_2 * ||W||_2^(T-t) * prod_{k=t}^{T-1} ||J_{k+1}||_2`` with spectral
    norms (largest singular values); so ``r[T-1] = ||dL/dh_T||_2``, and
    ``hidden_grad_norms(...) <= gradient_bound(...)`` elementwise.

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
    r : torch.Tensor, shape (T,)
        The bound for every time step; ``r[t-1]`` bounds ``||dL/dh_t||_2``.
    """
    raise NotImplementedError("gradient_bound: not implemented yet")

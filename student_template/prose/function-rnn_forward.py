def rnn_forward(x, h0, W, U, b, activation="tanh"):
    """Run a vanilla RNN over a whole sequence.

    For t = 1..T: ``z_t = W h_{t-1} + U x_t + b`` and ``h_t = act(z_t)``.
    With a batch the samples are rows, so ``z_t = h_{t-1} W^T + x_t U^T + b``.

    Parameters
    ----------
    x : torch.Tensor, shape (T, B, D)
        The inputs; ``x[t-1]`` holds x_t for the whole batch.
    h0 : torch.Tensor, shape (B, Hd)
        The initial hidden state h_0.
    W : torch.Tensor, shape (Hd, Hd)
        Hidden-to-hidden weights.
    U : torch.Tensor, shape (Hd, D)
        Input-to-hidden weights.
    b : torch.Tensor, shape (Hd,)
        The bias.
    activation : {"tanh", "sigmoid"}, default "tanh"
        The activation function act.

    Returns
    -------
    H : torch.Tensor, shape (T, B, Hd)
        All hidden states; ``H[t-1]`` is h_t (h_0 is not included).
    """
    raise NotImplementedError("rnn_forward: not implemented yet")

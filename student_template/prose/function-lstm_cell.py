def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One step of an LSTM cell, exactly as ``torch.nn.LSTMCell``.

    The pre-activations ``x W_ih^T + b_ih + h W_hh^T + b_hh`` hold four blocks of Hd columns,
    in the order input gate i, forget gate f, cell candidate g, output gate o.

    Parameters
    ----------
    x : torch.Tensor, shape (B, D)
        The input at this step.
    h : torch.Tensor, shape (B, Hd)
        The previous hidden state.
    c : torch.Tensor, shape (B, Hd)
        The previous cell state.
    W_ih : torch.Tensor, shape (4*Hd, D)
    W_hh : torch.Tensor, shape (4*Hd, Hd)
    b_ih : torch.Tensor, shape (4*Hd,)
    b_hh : torch.Tensor, shape (4*Hd,)

    Returns
    -------
    h_new : torch.Tensor, shape (B, Hd)
        The new hidden state.
    c_new : torch.Tensor, shape (B, Hd)
        The new cell state.
    """
    raise NotImplementedError("lstm_cell: not implemented yet")

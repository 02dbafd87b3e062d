def activation_jacobian(z, activation="tanh"):
    """The Jacobian of h = act(z) with respect to z.

    Parameters
    ----------
    z : torch.Tensor, shape (Hd,)
        A pre-activation vector.
    activation : {"tanh", "sigmoid"}, default "tanh"
        The activation function act.

    Returns
    -------
    J : torch.Tensor, shape (Hd, Hd)
        ``diag(act'(z))``: the derivatives on the diagonal, zeros elsewhere.
    """
    raise NotImplementedError("activation_jacobian: not implemented yet")

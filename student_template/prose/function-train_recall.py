def train_recall(cell, seq_len, n_classes, seed):
    """Train a sequence classifier on the recall task of ``make_recall_data``.

    The label of a sequence is its first token; everything after it is noise, so the model must
    remember the first input for ``seq_len`` steps. Keep it fast and reproducible: use ``seed``
    for everything random.

    How it is graded: the grader calls ``train_recall("lstm", seq_len={{recall seq_len}}, n_classes={{recall n_classes}}, seed=...)``
    in your notebook's kernel (one CPU thread) and measures the returned model's accuracy on
    held-out sequences it draws itself. It needs at least {{recall_percent threshold}} accuracy within
    {{recall cpu_time_limit}} CPU seconds of training. Seed after seed (from {{recall train_seed}} on) is tried
    until one succeeds, while the tries together stay under {{recall cpu_budget}} CPU seconds (at most
    {{recall tries}} tries): a fast trainer gets more tries, so a fast, slightly fragile one is not
    failed by bad luck.
    The vanilla RNN (``cell="rnn"``) is trained once beside it for comparison, without points.

    - Train on the global ``make_recall_data`` (call it by that name inside this function):
      while grading, the grader swaps in one that relabels the classes with a secret
      permutation, and checks the model against the same relabelling. A model must learn the
      labels from the data; one that reads the answer off its input scores 0.
    - The recurrent part is an LSTM fed one token vector per step, in order: a ``torch.nn.LSTM``
      or ``torch.nn.LSTMCell``, your own ``lstm_cell`` in a loop, or LSTM weights of your own
      (``torch.nn.RNN``/``RNNCell`` for ``cell="rnn"``). The grader rebuilds it from its weights
      and checks that its state after the last step holds the first token: the accuracy must
      come from what the LSTM learned.
    - At this length an LSTM learns the task only when its forget gate starts open: initialise
      the forget-gate bias high (about 4 or more; ``sigmoid(4) ** {{recall seq_len}}`` is still
      {{forget_gate_open 4}}), or the gradient of the first token vanishes like the RNN's.

    Parameters
    ----------
    cell : {"rnn", "lstm"}
        The recurrent part: a vanilla RNN (tanh) or an LSTM.
    seq_len : int
        The length T of the sequences.
    n_classes : int
        The number of token classes C (also the input size, one-hot).
    seed : int
        The seed for data and initialisation.

    Returns
    -------
    model : torch.nn.Module
        The trained model. ``model(x)`` with x of shape (seq_len, B, n_classes), float32, returns
        logits of shape (B, n_classes).
    """
    raise NotImplementedError("train_recall: not implemented yet")

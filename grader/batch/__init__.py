"""A batch of submissions: worker processes, order, interruption, late policy, the cluster."""

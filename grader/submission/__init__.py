"""What a submission is before it runs: the file, the notebook, the group."""

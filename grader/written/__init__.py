"""The written answers: the text a reader sees, the rules of contract §5, the concepts named."""

"""The thin command line: options defined once, one error boundary."""

"""Measuring a generator: the MNIST classifier, the metrics and the report evaluate.py prints."""

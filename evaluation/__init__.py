"""Measuring a generator: the MNIST classifier and its training, the metrics, the report evaluate.py prints,
and the command lines of evaluate.py (cli) and train_classifier.py (classifier_cli)."""

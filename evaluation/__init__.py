"""Measuring a generator: the MNIST classifier's training, the metrics, the report evaluate.py prints,
and the command lines of evaluate.py (cli) and train_classifier.py (classifier_cli).

The classifier network itself is in model/classifier.py: the web app reads pictures with it too."""

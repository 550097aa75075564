"""What the command-line scripts (train.py, train_classifier.py, evaluate.py) share: one-line errors,
argparse value types and output checks (flags), and the signals that end a run (signals)."""

"""The command-line scripts' flags and wiring, one module per script and named after it (train,
train_classifier, evaluate, handwriting), and what they share: one-line errors, argparse value types
and output checks (flags), and the signals that end a run (signals)."""

"""The command-line scripts' flags and wiring, one module per script and named after it (train,
train_classifier, evaluate, handwriting), and what they share (flags): one-line errors, argparse value
types, the data flags and the checks of output folders."""

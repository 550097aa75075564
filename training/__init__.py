"""Training the conditional GAN: the updater, the Trainer and its extensions, MNIST data, ChainerMN set-up,
and train.py's command line (cli)."""

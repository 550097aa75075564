"""Training the conditional GAN: the updater, Trainer extensions, MNIST data and ChainerMN set-up."""

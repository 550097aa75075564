"""Training the conditional GAN: the updater, the Trainer and its extensions, MNIST data, ChainerMN set-up,
the allocator's settings for the CPU (memory), and train.py's command line (cli)."""

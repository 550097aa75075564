"""Training the conditional GAN: the updater, the Trainer and its extensions, ChainerMN set-up,
the allocator's settings for the CPU (memory), snapshots and signals (stopping); and training the MNIST
classifier that judges it (classifier)."""

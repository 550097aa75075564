"""Training the conditional GAN: the updater, the Trainer and its extensions, ChainerMN set-up,
the allocator's settings for the CPU (memory), snapshots (stopping) and the signals that end a run
(signals); and training the MNIST classifier that judges the generator (classifier)."""

"""Training the conditional GAN: the updater, the Trainer and its extensions, ChainerMN set-up,
the allocator's settings for the CPU (memory), snapshots and signals (stopping), and train.py's
command line (cli)."""

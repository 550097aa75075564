"""The MNIST digits, read from the four standard IDX .gz files or downloaded by Chainer (data), for
training the GAN and the classifier and for evaluating against real digits."""

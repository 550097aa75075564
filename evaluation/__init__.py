"""Measuring a generator: the metrics, the report evaluate.py prints, and how the handwriting sliders
move the pictures.

The classifier network itself is in model/classifier.py (the web app reads pictures with it too) and
its training in training/classifier.py."""

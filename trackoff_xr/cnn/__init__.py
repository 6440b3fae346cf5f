"""The shared CNN matcher (``method="cnn"``): features, training, inference.

Nothing here imports TensorFlow at import time.
"""

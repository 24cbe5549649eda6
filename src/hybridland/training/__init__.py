"""Training: setups of predictor groups, the training loop, member selection, evaluation."""

"""Network science on the weights of a trained deep network, and the MLflow tracking plugin set."""

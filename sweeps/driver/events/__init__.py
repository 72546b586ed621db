"""What the sweep does with Ray Tune's trial events: MLflow runs, progress lines, alerts to a
webhook, histogram figures."""

"""sweep's orchestration: config schema, search space, Ray Tune launch, trainable, data, MLflow."""

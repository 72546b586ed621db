"""sweep: random hyperparameter search for PyTorch models, the CS231n way.

Two sides a reader must tell apart:
- driver/: what runs once, in the `sweep` process: the sweep file, the plan, Ray and
  Ray Tune, the MLflow record (driver/tracking/), reports and refinement, Kubernetes.
- trial/: what runs in each Ray worker, in plain PyTorch: data, the training loop,
  diagnostics, and the thin Ray Tune trainable around them.
The modules here are the contract both sides share: the hyperparameters a trial
understands, the settings every trial gets, how a trial ended, and expected errors.
"""

"""The trial side: what runs in each Ray worker, in plain PyTorch (the training loop needs no
Ray)."""

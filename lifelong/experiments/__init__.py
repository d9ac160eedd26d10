"""Experiments: run configurations, the runner, run directories and checkpoints, the ledger of
expected results, and sweeps and tuning on Ray."""

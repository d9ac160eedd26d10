"""This folder is a separate package (installed by tests/test_plugins.py into a temporary
environment), not part of the project's suite: importing it here would register its learner in
the test process."""

collect_ignore_glob = ["*"]

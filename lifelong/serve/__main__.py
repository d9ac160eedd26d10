"""``python -m lifelong.serve --config serve.toml``: the same command as ``lifelong serve``."""

from lifelong.serve.cli import main

if __name__ == "__main__":
    main()

"""``python -m lifelong.serve --config serve.toml``: the same command as ``lifelong serve``."""

from lifelong.cli.serve import main

if __name__ == "__main__":
    main()

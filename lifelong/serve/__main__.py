"""``python -m lifelong.serve --config serve.toml``: the same command as ``lifelong serve``.

The one module of :mod:`lifelong.serve` that imports :mod:`lifelong.cli`: the command line sits
above the service, and this entry point is the command line.
"""

from lifelong.cli.serve import main

if __name__ == "__main__":
    main()

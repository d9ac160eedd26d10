"""``python -m lifelong.cli``: the same as the ``lifelong`` command."""

from lifelong.cli import main

if __name__ == "__main__":
    main()

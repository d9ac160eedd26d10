"""Write rows with the real ``l2logger.DataLogger`` (run inside the l2metrics venv).

Usage: ``python write_with_l2logger.py SPEC.json BASE_DIR``. ``SPEC.json`` holds ``scenario_name``,
``metric_columns``, ``scenario_info`` and ``rows`` (without timestamps: l2logger stamps them). The
run directory is printed on stdout. The test compares its files with ours.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> None:
    from l2logger import l2logger  # only in the l2metrics venv

    with open(argv[1]) as f:
        spec = json.load(f)
    logger = l2logger.DataLogger(
        argv[2], spec["scenario_name"], {"metrics_columns": spec["metric_columns"]}, spec["scenario_info"]
    )
    for row in spec["rows"]:
        logger.log_record(row)
    logger.close()
    print(logger.scenario_dir)


if __name__ == "__main__":
    main(sys.argv)

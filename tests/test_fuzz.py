"""A seeded, bounded fuzz run over every reader (tests/fuzz_driver.py): a few hundred mutated images,
videos and weights files, each ending in a correct output or a one-line error naming the file, within a
time and memory bound, with no traceback and nothing left at the output path. `make fuzz` runs longer."""

import json
import subprocess
import sys
from pathlib import Path


def test_fuzzed_files_end_in_an_output_or_a_one_line_error():
    driver = Path(__file__).with_name("fuzz_driver.py")
    proc = subprocess.run(
        [sys.executable, str(driver), "--cases", "300", "--seed", "0", "--seconds", "60"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = lines[-1]
    failures = lines[:-1]
    assert summary["cases"] == 300 and summary["failures"] == len(failures) == 0, failures[:5]
    assert proc.returncode == 0

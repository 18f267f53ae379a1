"""Copy ``reports/reference/findings.md`` into the README's findings block (after regenerating the reference report).

    python tests/scripts/readme_findings.py

``tests/test_findings.py`` fails while the README's copy and the file differ; this writes the file's text
between the block's markers and leaves the rest of the README as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- findings: begin (copy of reports/reference/findings.md; do not edit here) -->\n"
END = "<!-- findings: end -->"


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print("error: README.md has no findings block (its begin/end markers are missing)", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    findings = (ROOT / "reports" / "reference" / "findings.md").read_text()
    readme.write_text(head + BEGIN + findings + END + tail)
    print("README.md: findings block updated from reports/reference/findings.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The crate's size rule: no non-test source file over 500 lines and no function over 60 lines,
unless a one-line reason says why.

A long file carries a line starting `//! Size:` among its first 30 lines; a long function carries a
`// Size:` comment in the 3 lines above its `fn` line (doc comments and attributes may sit between
the reason and the `fn`). Test code is not counted: `tests.rs`, `*_tests.rs`, `suite.rs`, files
under a `tests/` folder, and the part of a file from `#[cfg(test)]` followed by `mod tests {`.

Usage: python3 .ci/sizes.py [src]   (prints `path:line name (N lines)`; exit 1 when any is found)
"""
import os
import re
import sys

MAX_FILE = 500
MAX_FN = 60

FN_RE = re.compile(
    r"^(?P<indent>\s*)(?:pub(?:\([^)]*\))?\s+)?(?:default\s+)?(?:const\s+)?(?:async\s+)?"
    r"(?:unsafe\s+)?(?:extern\s+\"[^\"]*\"\s+)?fn\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)
TEST_MOD_RE = re.compile(r"^\s*#\[cfg\(test\)\]\s*\n\s*(?:pub(?:\([^)]*\))?\s+)?mod tests \{", re.M)


def is_test_file(path):
    parts = path.split(os.sep)
    name = parts[-1]
    if "tests" in parts[:-1]:
        return True
    return name in ("tests.rs", "suite.rs") or name.endswith("_tests.rs")


def non_test_lines(text):
    """The lines of the file before its inline test module, if it has one."""
    match = TEST_MOD_RE.search(text)
    if match:
        text = text[: match.start()]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def fn_end(lines, start, indent):
    """The index of the line closing the fn that opens at `start`, or None for a bodiless fn."""
    opened = False
    for i in range(start, len(lines)):
        code = lines[i].split("//")[0].rstrip()
        if not opened:
            if "{" in code:
                opened = True
                # A one-line fn: `fn f() { ... }`.
                if code.endswith("}") and code.count("{") == code.count("}"):
                    return i
            elif code.endswith(";"):
                return None  # a declaration without a body (a trait method)
            continue
        if lines[i].rstrip() == indent + "}":
            return i
    return None


def has_reason_above(lines, start):
    """A `// Size:` comment within the 3 lines above the fn, skipping docs and attributes."""
    i = start - 1
    seen = 0
    while i >= 0 and seen < 3:
        stripped = lines[i].strip()
        if stripped.startswith("// Size:"):
            return True
        if stripped.startswith("///") or stripped.startswith("#[") or stripped.startswith("#!["):
            i -= 1
            continue
        seen += 1
        i -= 1
    return False


def check_file(path, report):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    lines = non_test_lines(text)
    if len(lines) > MAX_FILE and not any(l.startswith("//! Size:") for l in lines[:30]):
        report.append(f"{path}:1 (file) ({len(lines)} lines)")
    for i, line in enumerate(lines):
        match = FN_RE.match(line)
        if not match:
            continue
        end = fn_end(lines, i, match.group("indent"))
        if end is None:
            continue
        count = end - i + 1
        if count > MAX_FN and not has_reason_above(lines, i):
            report.append(f"{path}:{i + 1} {match.group('name')} ({count} lines)")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "src"
    report = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for file in sorted(files):
            path = os.path.join(directory, file)
            if not file.endswith(".rs") or is_test_file(os.path.relpath(path, root)):
                continue
            check_file(path, report)
    for line in report:
        print(line)
    if report:
        print(f"{len(report)} over the size rule without a `Size:` reason", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

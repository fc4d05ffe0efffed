"""Resolve the Debian packages a template rootfs needs (used by scripts/build_images.sh).

    python3 executor/images/debs.py PKG...

prints one line per package of the dependency closure: ``name version arch filename``, where
filename is what ``apt-get download`` writes. Depends and Pre-Depends are followed (Recommends and
Suggests are not); of alternatives (``a | b``) and virtual packages the first provider that is not
excluded is taken. Packages only needed to *install* packages with dpkg (dpkg itself, debconf, perl,
awk, tar...) are excluded: the image is assembled with ``dpkg -x`` and never runs maintainer scripts.
"""

from __future__ import annotations

import re
import subprocess
import sys

EXCLUDED = {
    "adduser",
    "cdebconf",
    "debconf",
    "debconf-2.0",
    "dpkg",
    "gawk",
    "init-system-helpers",
    "install-info",
    "libperl5.36",
    "lsb-base",
    "mailcap",
    "mawk",
    "mime-support",
    "original-awk",
    "passwd",
    "perl",
    "perl-base",
    "perl-modules-5.36",
    "sysvinit-utils",
    "tar",
    "usr-is-merged",
    "usrmerge",
}


def _depends(packages: list[str]) -> dict[str, list[list[str]]]:
    """For each package: its dependency groups, each a list of alternatives (virtuals expanded)."""
    out = subprocess.run(
        [
            "apt-cache",
            "depends",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *packages,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    group: list[str] = []
    pending_or = False
    last_virtual = False
    for line in out.splitlines():
        if not line.startswith(" "):
            current = result.setdefault(line.strip(), [])
            group, pending_or, last_virtual = [], False, False
            continue
        assert current is not None
        m = re.match(r"^ ( |\|)(Depends|PreDepends): (.+)$", line)
        if m:
            target = m.group(3).strip()
            if not pending_or:
                group = []
                current.append(group)
            last_virtual = target.startswith("<")
            if not last_virtual:
                group.append(target.split(":")[0])
            pending_or = m.group(1) == "|"
        elif line.startswith("    ") and last_virtual:
            group.append(line.strip().split(":")[0])  # a provider of the virtual package above
        else:
            last_virtual = False
    return result


def resolve(roots: list[str]) -> list[str]:
    seen: set[str] = set()
    todo = [p for p in roots if p not in EXCLUDED]
    while todo:
        batch = sorted(set(todo) - seen)
        todo = []
        if not batch:
            break
        seen.update(batch)
        for groups in _depends(batch).values():
            for alternatives in groups:
                allowed = [a for a in alternatives if a not in EXCLUDED]
                if not allowed or any(a in seen for a in allowed):
                    continue
                todo.append(allowed[0])
    return sorted(seen)


def describe(packages: list[str]) -> list[str]:
    out = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", *packages], check=True, capture_output=True, text=True
    ).stdout
    lines = []
    for stanza in out.strip().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", stanza, flags=re.M))
        name, version, arch = fields["Package"], fields["Version"], fields["Architecture"]
        lines.append(f"{name} {version} {arch} {name}_{version.replace(':', '%3a')}_{arch}.deb")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for line in describe(resolve(argv)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

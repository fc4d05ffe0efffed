"""Workspace path rules: normalized, relative, never outside the session's prefix."""

from __future__ import annotations

import pytest

from sandboxcp.domain.errors import InvalidParameter
from sandboxcp.domain.workspace import normalize_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("data/input.csv", "data/input.csv"),
        ("./data//input.csv", "data/input.csv"),
        ("a/b/../c.txt".replace("../", ""), "a/b/c.txt"),
        ("output/result%20final.csv", "output/result final.csv"),
        ("ünïcode/файл.txt", "ünïcode/файл.txt"),
    ],
)
def test_good_paths_are_normalized(raw, expected):
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "a/..",
        "..",
        "%2e%2e/x",
        "%2E%2E%2Fx",
        "a/%2e%2e/%2e%2e/b",
        "%252e%252e%252fetc%252fpasswd",
        "%2Fetc%2Fpasswd",
        "a\\..\\b",
        "file\x00.txt",
        "line\nbreak",
        "tab\there",
        "",
        ".",
        "./",
        "x" * 1025,
        "é" * 513,
    ],
)
def test_traversal_and_bad_names_are_refused(raw):
    with pytest.raises(InvalidParameter):
        normalize_path(raw)

"""The docs site builds with `mkdocs build --strict`, and no page points at files users lack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install '.[dev]')")

ROOT = Path(__file__).parents[2]
#: The project's own planning (its files, feature ids, issue numbers), which users do not get.
NOT_SHIPPED = re.compile(
    r"DESIGN(?:\.md| F\d)|TRITON-COMPAT|STYLE\.md|TOOLS\.md|shared/|\bF\d{1,2}\b|[Ii]ssue \d+"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pages = sorted(p for p in out.rglob("index.html"))
    print(f"mkdocs build --strict: {len(pages)} pages\n{done.stderr}")
    return out


def test_the_site_builds_strict_with_every_page(site: Path) -> None:
    sources = {p.relative_to(ROOT / "docs").with_suffix("") for p in (ROOT / "docs").rglob("*.md")}
    built = {p.parent.relative_to(site) for p in site.rglob("index.html")}
    expected = {s.parent if s.name == "index" else s for s in sources}
    assert expected <= built


def test_no_page_refers_to_files_users_do_not_have(site: Path) -> None:
    texts = {
        str(path.relative_to(ROOT)): path.read_text()
        for path in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")]
    }
    texts |= {str(page.relative_to(site)): page.read_text() for page in site.rglob("*.html")}
    offenders = {name: NOT_SHIPPED.findall(text) for name, text in texts.items()}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_api_reference_pages_are_rendered_from_docstrings(site: Path) -> None:
    page = (site / "reference" / "protos" / "index.html").read_text()
    assert "asyncinfer.protos.load" in page and "doc-function" in page
    assert ":class:" not in page and ":func:" not in page  # reST roles become code

"""README.md is a front page and docs/ holds the manual: every relative link in them resolves (the
file, and the heading when the link names an anchor, by GitHub's slug rules), and the front page
keeps its promises (the two commands first, at most 250 lines, a picture made by `make docs-images`)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from posecore.runs import REPO_ROOT

DOCS = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"
IMAGES = DOCS / "images"
MAX_README_LINES = 250
MAX_IMAGE_BYTES = 300_000

# [text](target "title") and ![alt](target); <img src="..."> and <a href="..."> in inline HTML
MARKDOWN_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)\s*=\s*\"([^\"]+)\"", re.IGNORECASE)
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
ABSOLUTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        marker = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
        if marker:
            if fence is None:
                fence = marker.group(1)[0] * 3
            elif marker.group(1).startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, line


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link and image outside code (fenced blocks and code spans)."""
    found = []
    for number, line in _prose_lines(text):
        prose = CODE_SPAN.sub("", line)
        found += [(number, m.group(1)) for m in MARKDOWN_LINK.finditer(prose)]
        found += [(number, m.group(1)) for m in HTML_LINK.finditer(prose)]
        definition = REFERENCE_DEFINITION.match(prose)
        if definition:
            found.append((number, definition.group(1)))
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (code spans as their content, links as their
    text) lower-cased, every character but letters, digits, '_', '-' and spaces removed, spaces
    made '-'."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    result = set()
    for _, line in _prose_lines(text):
        heading = HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            result.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
    return result


def broken_links(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """Every relative link of a markdown file that does not resolve, as 'file:line: target (why)'."""
    problems = []
    for number, target in links(path.read_text()):
        if ABSOLUTE.match(target):
            continue
        file_part, _, fragment = target.partition("#")
        where = f"{path.relative_to(root)}:{number}: {target}"
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if file_part.startswith("/"):
            problems.append(f"{where} (an absolute path; links must be relative)")
        elif not resolved.exists():
            problems.append(f"{where} (no such file)")
        elif fragment:
            if resolved.suffix != ".md":
                problems.append(f"{where} (an anchor into a file that is not markdown)")
            elif unquote(fragment) not in anchors(resolved.read_text()):
                problems.append(f"{where} (no heading with that anchor in {resolved.relative_to(root)})")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_the_link_check_finds_a_broken_file_and_a_broken_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Your own set (`data.dataset: custom`)\n\n## Twice\n\n## Twice\n")
    page.write_text(
        "# Page\n\n[fine](other.md#your-own-set-datadataset-custom) [twice](other.md#twice-1)\n"
        "[gone](missing.md) ![gone](images/none.png) [bad](other.md#nowhere) [self](#page)\n"
        '[here](#nothing) `[code](missing.md)` <img src="nope.png">\n'
        "```\n[in a block](missing.md)\n```\n[web](https://example.org/x.md)\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "missing.md (no such file)",
        "images/none.png (no such file)",
        "other.md#nowhere (no heading with that anchor in other.md)",
        "#nothing (no heading with that anchor in page.md)",
        "nope.png (no such file)",
    ]


@pytest.mark.parametrize(
    "heading, slug",
    [
        ("The executed train.ipynb is the record of the run", "the-executed-trainipynb-is-the-record-of-the-run"),
        ("Your own keypoint set (`data.dataset: custom`)", "your-own-keypoint-set-datadataset-custom"),
        ("Training on 1..N devices and several machines", "training-on-1n-devices-and-several-machines"),
        (
            "Whole-body keypoint sets: Halpe-26, Halpe-136, COCO-WholeBody",
            "whole-body-keypoint-sets-halpe-26-halpe-136-coco-wholebody",
        ),
        (
            "The seeds' recipe on 1, 2, 4 or 8 devices (global batch, accumulation)",
            "the-seeds-recipe-on-1-2-4-or-8-devices-global-batch-accumulation",
        ),
        ("Optional: Ascend NPU and apex", "optional-ascend-npu-and-apex"),
    ],
)
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_readme_is_a_front_page():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; the manual belongs in docs/"
    head = "\n".join(lines[:10])
    assert "make demo" in head and "make test" in head, "the two commands belong in README's first lines"
    pictures = [target for _, target in links(text) if target.startswith("docs/images/") and target.endswith(".png")]
    assert pictures, "README shows no picture from docs/images/"
    linked = {
        (README.parent / target.partition("#")[0]).resolve() for _, target in links(text) if not ABSOLUTE.match(target)
    }
    pages = sorted(DOCS.glob("*.md"))
    assert len(pages) >= 3
    assert [p.name for p in pages if p.resolve() not in linked] == [], "docs pages the README does not link"


def test_docs_images_are_small_pngs_made_by_the_script():
    images = sorted(IMAGES.glob("*"))
    assert images, "docs/images/ is empty: run make docs-images"
    assert [p.name for p in images if p.suffix != ".png"] == []
    assert {p.name: p.stat().st_size for p in images if p.stat().st_size >= MAX_IMAGE_BYTES} == {}
    script = (DOCS / "make_images.py").read_text()
    assert [p.name for p in images if p.name not in script] == [], "an image docs/make_images.py does not make"
    assert re.search(r"^docs-images:", (REPO_ROOT / "Makefile").read_text(), re.M)

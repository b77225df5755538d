"""The documentation: the site builds strictly, works offline, renders no Sphinx markup and no
private module, cites nothing outside the repository, and every code example in the README and
the guide pages runs as written."""

from __future__ import annotations

import html
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import griffe
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Markup the API pages must not show as text: Sphinx roles and reST literal-block markers.
SPHINX = re.compile(r":(?:class|meth|func|attr|mod|obj|exc|data):|Example::")
# Citations of files that are not in the repository (the old design file, a sibling data folder).
OUTSIDE = re.compile(r"\bDESIGN\b|\bshared/|SPARSEGRAD_" + "SHARED_DATA")
# Guide pages whose ```python blocks are complete programs; the API pages hold none.
GUIDES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
README_SECTION = "## Use it in your own SNN code"


def python_blocks(markdown: str) -> list[str]:
    """The fenced ```python blocks of a markdown text or docstring, dedented."""
    found = re.findall(r"^([ \t]*)```python\n(.*?)^\1```", markdown, re.S | re.M)
    return [textwrap.dedent(block) for _, block in found]


def readme_blocks() -> list[str]:
    """The python blocks of the README's "use it in your own SNN code" section."""
    text = (ROOT / "README.md").read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    return python_blocks(text[start : end if end >= 0 else None])


def example_ids() -> list[pytest.param]:
    params = [pytest.param("README.md", i, b, id=f"README-{i}") for i, b in enumerate(readme_blocks())]
    package_doc = griffe.load("sparsegrad", search_paths=[str(ROOT)], resolve_aliases=False).docstring.value
    params += [pytest.param("sparsegrad", i, b, id=f"sparsegrad-{i}") for i, b in enumerate(python_blocks(package_doc))]
    for page in GUIDES:
        blocks = python_blocks((ROOT / page).read_text())
        params += [pytest.param(page, i, b, id=f"{page}-{i}") for i, b in enumerate(blocks)]
    return params


def run_example(code: str, name: str) -> dict:
    """Executes ``code`` as a script in a fresh namespace; returns that namespace."""
    namespace = {"__name__": "__main__"}
    exec(compile(code, name, "exec"), namespace)
    return namespace


def offenders(text: str, pattern: re.Pattern, width: int = 40) -> list[str]:
    """Each match of ``pattern`` in ``text`` with ``width`` characters around it, on one line."""
    text = " ".join(text.split())
    return [text[max(m.start() - width, 0) : m.end() + width] for m in pattern.finditer(text)]


# ------------------------------------------------------------------------------ the site


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as ``make docs`` builds it (``--strict``: any warning fails), in a tmp folder."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def page_texts(site: Path) -> dict[str, str]:
    """Visible text of every built page (tags stripped, entities decoded)."""
    return {
        p.relative_to(site).as_posix(): html.unescape(re.sub(r"<[^>]+>", "", p.read_text()))
        for p in sorted(site.rglob("*.html"))
    }


def test_site_builds_strict_with_every_page(site):
    pages = page_texts(site)
    # Material's offline plugin: plain .html pages, so the site also works from file://.
    for page in ["index.html", "design.html", "interop.html", "results.html"]:
        assert page in pages
    # Class headings carry their signatures (mkdocstrings' separate signature block).
    masked = (site / "api/masked.html").read_text()
    assert 'class="doc doc-heading"' in masked and "doc-signature" in masked
    signature = html.unescape(re.sub(r"<[^>]+>", "", masked.split("doc-signature", 1)[1][:3000]))
    assert re.search(r"MaskedGradient\(\s*p: float = 0\.5,", signature), signature[:400]


# What a page loads: <script src>, <link href> (stylesheets, fonts, icons, preconnects), and a
# stylesheet's url(...) and @import.
LOADS = re.compile(r"""<script\b[^>]*\bsrc=["']([^"']+)|<link\b[^>]*\bhref=["']([^"']+)""")
CSS_LOADS = re.compile(r"""url\(\s*["']?([^"')]+)|@import\s+["']([^"']+)""")


def remote(urls) -> list[str]:
    """The URLs that need a network: absolute http(s) or protocol-relative ones."""
    return [u for u in urls if re.match(r"(https?:)?//", u.strip())]


def test_site_loads_nothing_from_the_network(site):
    """No CDN: every script, stylesheet and font the built pages load is in the site."""
    found = {}
    for page in sorted(site.rglob("*.html")):
        links = [a or b for a, b in LOADS.findall(page.read_text())]
        found[page.relative_to(site).as_posix()] = remote(links)
    for sheet in sorted(site.rglob("*.css")):
        found[sheet.relative_to(site).as_posix()] = remote(a or b for a, b in CSS_LOADS.findall(sheet.read_text()))
    found = {name: urls for name, urls in found.items() if urls}
    assert not found, "remote scripts/stylesheets/fonts in the built site:\n" + "\n".join(
        f"{name}: {urls[:3]}" for name, urls in found.items()
    )
    design = (site / "design.html").read_text()
    for local in ["javascripts/katex/katex.min.js", "javascripts/katex/katex.min.css", "javascripts/katex-render.js"]:
        assert local in design and (site / local).is_file(), local
    fonts = re.findall(r"url\((fonts/[^)]+\.woff2)\)", (site / "javascripts/katex/katex.min.css").read_text())
    assert fonts and all((site / "javascripts/katex" / font).is_file() for font in fonts)


def test_equations_reach_the_page_for_katex(site):
    """arithmatex (generic) wraps each display equation for katex-render.js: \\[ ... \\]."""
    design = (site / "design.html").read_text()
    blocks = re.findall(r'<div class="arithmatex">(.*?)</div>', design, re.S)
    assert len(blocks) >= 4 and all(b.strip().startswith("\\[") and b.strip().endswith("\\]") for b in blocks)


def test_api_pages_show_no_private_module(site):
    """Internals (``sparsegrad._masks``, its ``KernelMask`` and ``NeuronMaskCache``, any ``_name``)
    stay out of the API pages: no rendered object (an anchor ``id="sparsegrad...."``) names them."""
    found, rendered = {}, 0
    for page in sorted((site / "api").rglob("*.html")):
        ids = re.findall(r'id="(sparsegrad\.[\w.]+)"', page.read_text())
        rendered += len(ids)
        hidden = [i for i in ids if any(part.startswith("_") or part in ("KernelMask", "NeuronMaskCache")
                                        for part in i.split("."))]
        if hidden:
            found[page.name] = hidden[:3]
    assert rendered > 100 and not found, found


def test_a_page_naming_a_private_module_fails_the_build():
    sys.path.insert(0, str(ROOT / "docs/_hooks"))
    try:
        import api_sections
    finally:
        sys.path.remove(str(ROOT / "docs/_hooks"))
    from mkdocs.exceptions import PluginError

    page = type("Page", (), {"file": type("File", (), {"src_path": "api/masked.md"})()})()
    config = {"config_file_path": str(ROOT / "mkdocs.yml")}
    with pytest.raises(PluginError, match=r"api/masked\.md: private modules are not API.*sparsegrad\._masks"):
        api_sections.on_page_markdown("# MSG\n\n<!-- api: sparsegrad._masks -->\n", page, config, None)


def test_built_pages_show_no_sphinx_markup(site):
    found = {page: offenders(text, SPHINX) for page, text in page_texts(site).items()}
    found = {page: hits for page, hits in found.items() if hits}
    assert not found, "literal Sphinx roles / 'Example::' on built pages:\n" + "\n".join(
        f"{page}: {len(hits)}: {hits[:3]}" for page, hits in found.items()
    )


def test_built_pages_cite_nothing_outside_the_repository(site):
    found = {page: offenders(text, OUTSIDE) for page, text in page_texts(site).items()}
    found = {page: hits for page, hits in found.items() if hits}
    assert not found, "\n".join(f"{page}: {hits[:3]}" for page, hits in found.items())


def test_design_page_keeps_the_cited_section_numbers():
    """Code cites ``docs/design.md §2.3`` etc.: every such section exists, with an anchor."""
    text = (ROOT / "docs/design.md").read_text()
    headings = re.findall(r"^#{2,3} (\d(?:\.\d)?)\b.*\{ ?#(design-[\w-]+) ?\}", text, re.M)
    numbers = [n for n, _ in headings]
    expected = [str(i) for i in range(1, 10)] + ["2.1", "2.2", "2.3", "2.4"]
    assert sorted(numbers) == sorted(expected), numbers
    cited = set()
    for path in list((ROOT / "sparsegrad").rglob("*.py")) + list((ROOT / "docs").rglob("*.md")):
        cited.update(re.findall(r"design\.md §(\d(?:\.\d)?)", path.read_text()))
    assert cited <= set(numbers), f"cited sections missing from docs/design.md: {cited - set(numbers)}"


# ------------------------------------------------------------------------------ docstrings


def all_docstrings() -> list[tuple[str, str]]:
    """(path, docstring) of every object griffe finds in the package, private ones included."""
    package = griffe.load("sparsegrad", search_paths=[str(ROOT)], resolve_aliases=False)
    out, stack = [], [package]
    while stack:
        obj = stack.pop()
        if obj.docstring is not None:
            out.append((obj.path, obj.docstring.value))
        stack.extend(m for m in obj.members.values() if not m.is_alias)
    return out


def test_docstrings_use_autorefs_not_sphinx_roles():
    docs = all_docstrings()
    assert any(path == "sparsegrad.masked.MaskedGradient" for path, _ in docs)
    found = [f"{path}: {offenders(doc, SPHINX, 30)[:2]}" for path, doc in docs if SPHINX.search(doc)]
    assert not found, f"{len(found)} docstrings with Sphinx roles or 'Example::':\n" + "\n".join(found)


def test_no_file_cites_anything_outside_the_repository():
    files = [ROOT / "README.md"]
    for folder in ("sparsegrad", "tests", "docs", "recipes", "bench"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".yml", ".sh"}]
    found = [f"{p.relative_to(ROOT)}: {offenders(p.read_text(), OUTSIDE, 30)[:2]}"
             for p in files if OUTSIDE.search(p.read_text())]
    assert not found, "citations of files outside the repository (the old design file, shared data):\n" + "\n".join(found)


# ------------------------------------------------------------------------------ examples


def test_examples_are_found():
    ids = [p.id for p in example_ids()]
    assert "README-0" in ids and "sparsegrad-0" in ids
    assert sum(i.startswith("docs/interop.md") for i in ids) == 4, ids


@pytest.mark.parametrize(("page", "index", "code"), example_ids())
def test_example_runs_verbatim(page, index, code):
    torch.manual_seed(0)
    ns = run_example(code, f"{page}[{index}]")
    head, msg, loss = ns.get("model"), ns.get("msg"), ns.get("loss")
    if loss is not None:
        assert math.isfinite(loss.item())
    if msg is not None:  # MSG ran on real backward passes and dropped about half (p = 0.5)
        stats = msg.stats
        assert stats["seen"] > 0 and 0.4 < stats["dropped"] / stats["seen"] < 0.6, stats
    if hasattr(head, "factors"):  # TWO moved its factors once, and they still sum to 1
        assert torch.isclose(head.factors.sum(), torch.tensor(1.0))
        assert not torch.allclose(head.factors, torch.full_like(head.factors, 1 / head.T))


def test_spikingjelly_example_needs_reset_net():
    """The interop page's claim: without ``reset_net`` the second step fails."""
    code = next(b for b in python_blocks((ROOT / "docs/interop.md").read_text()) if "spikingjelly" in b)
    assert "functional.reset_net(net)" in code
    broken = "\n".join(line for line in code.splitlines() if "reset_net" not in line)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        run_example(broken, "interop-spikingjelly-without-reset")

"""mkdocs hook: ``<!-- api: sparsegrad.x -->`` on a page becomes the mkdocstrings sections of
that module, or of a package and each of its public submodules, found at build time.

API pages then follow the package layout as it changes, every module a docstring links to is
rendered, and names a package re-exports from its submodules are rendered once, where they are
defined (mkdocstrings would otherwise render them twice: at the package and in the submodule).
Private modules (a name part starting with ``_``, e.g. ``sparsegrad._masks``) are internals,
not API: they are never rendered, and a page that names one fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path

import griffe
from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!-- api: ([\w.]+) -->$", re.M)


def public_submodules(folder: Path) -> list[str]:
    """Names of a package folder's public modules and subpackages (no leading ``_``), sorted."""
    names = [p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")]
    names += [p.name for p in folder.iterdir() if (p / "__init__.py").is_file() and not p.name.startswith("_")]
    return sorted(names)


def directive(path: str, members: list[str] | None = None) -> str:
    options = "    options:\n      show_root_full_path: true\n"
    if members is not None:
        options += f"      members: {members or 'false'}\n"
    return f"::: {path}\n{options}"


def expand(path: str, root: Path) -> str:
    folder = root.joinpath(*path.split("."))
    if not folder.is_dir():
        # A plain module, or nothing yet: a page may name a module another branch adds.
        return directive(path) if folder.with_suffix(".py").is_file() else ""
    package = griffe.load(path, search_paths=[str(root)], resolve_aliases=False)
    own = [
        name
        for name, member in package.members.items()
        if not name.startswith("_") and not member.is_alias and not member.is_module
    ]
    sections = [directive(path, own)]
    sections += [expand(f"{path}.{name}", root) for name in public_submodules(folder)]
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config["config_file_path"]).parent
    private = [path for path in MARKER.findall(markdown) if any(p.startswith("_") for p in path.split("."))]
    if private:
        raise PluginError(f"{page.file.src_path}: private modules are not API, remove <!-- api: {private[0]} -->")
    return MARKER.sub(lambda m: expand(m.group(1), root), markdown)

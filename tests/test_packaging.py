"""The install: pyproject.toml declares every package the code imports, in the core or in the
extra that holds the importing subpackage; each extra's subpackage names its extra when a module
of it is missing; the core imports and trains with every extra missing. (A real install into an
empty venv takes minutes and gigabytes of torch wheels, so it is checked by hand, not here.)"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sparsegrad import _extras

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sparsegrad"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# Imports that need no declaration, each with the reason.
OPTIONAL = {
    "triton": "the GPU backend, used only when importable (kernels/__init__.py); torch's Linux wheels bring it",
    "aedat": "only for .aedat4 recordings; its absence raises an error that says `pip install aedat`",
}
# A module of a declared package that needs another package to import.
NEEDS = {"torch.utils.tensorboard": "tensorboard"}

# What a core install brings besides the core's own list: timm's requirements (torchvision,
# safetensors, huggingface_hub and its tqdm). The others are what "the core import works with
# every extra missing" blocks.
NOT_IN_CORE = ("tonic", "accelerate", "tyro", "matplotlib", "tensorboard", "scipy", "nir")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))


def declared(extra: str | None) -> set[str]:
    """The distributions ``pip install 'sparsegrad[extra]'`` asks for (the core for None), with
    the extras it names (``sparsegrad[data]``) expanded."""
    requirements = PROJECT["dependencies"] + (PROJECT["optional-dependencies"][extra] if extra else [])
    names = set()
    for requirement in requirements:
        self_reference = re.fullmatch(r"sparsegrad\[([\w,]+)\]", requirement)
        if self_reference:
            for inner in self_reference.group(1).split(","):
                names |= declared(inner)
        else:
            names.add(requirement_name(requirement))
    return names


def third_party_imports(folder: Path) -> dict[str, str]:
    """Module imported (dotted, as written) -> the first file that imports it, for every
    absolute import under ``folder`` of neither the standard library nor sparsegrad."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "sparsegrad":
                    found.setdefault(name, path.relative_to(ROOT).as_posix())
    return found


@functools.cache
def installed() -> dict[str, list[str]]:
    """Top-level import name -> the installed distributions that provide it."""
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    names = {normalise(d) for d in installed().get(module.split(".")[0], [])}
    if module in NEEDS:
        names = {normalise(NEEDS[module])}
    assert names, f"{module} is imported but no installed distribution provides it"
    return names


def holder(path: Path) -> str | None:
    """The extra that holds a file of the package: its subpackage's name if that is an extra."""
    part = path.relative_to(PACKAGE).parts[0]
    return part if part in _extras.EXTRAS else None


def folders() -> list[pytest.param]:
    """Each extra's subpackage, and the core (every other module of the package)."""
    params = [pytest.param(PACKAGE / extra, extra, id=extra) for extra in _extras.EXTRAS if (PACKAGE / extra).is_dir()]
    return [*params, pytest.param(PACKAGE, None, id="core")]


# ------------------------------------------------------------------------------ declarations


@pytest.mark.parametrize(("folder", "extra"), folders())
def test_every_import_is_declared_where_its_code_lives(folder, extra):
    imports = third_party_imports(folder)
    if extra is None:  # the core: every file outside the extras' subpackages
        imports = {m: f for m, f in imports.items() if holder(ROOT / f) is None}
    assert imports, folder
    allowed = declared(extra)
    missing = {
        module: (path, sorted(distributions_of(module)))
        for module, path in imports.items()
        if module.split(".")[0] not in OPTIONAL and not distributions_of(module) & allowed
    }
    where = f"optional-dependencies.{extra}" if extra else "dependencies"
    assert not missing, f"imported but not declared in pyproject's {where} (module: file, distributions):\n" + "\n".join(
        f"{module}: {path}, {dists}" for module, (path, dists) in sorted(missing.items())
    )


def test_the_issues_packages_are_where_the_code_needs_them():
    """ninja builds the C++ kernel of the core; the study's statistics need scipy; the engine's
    TensorBoard logs need tensorboard; the core holds no engine, dataset or plotting package."""
    assert "ninja" in declared(None)
    assert "scipy" in declared("study") and "scipy" not in declared("train")
    assert "tensorboard" in declared("train")
    assert not declared(None) & {normalise(m) for m in NOT_IN_CORE + ("tqdm", "torchvision")}
    assert declared("all") >= declared("study") | declared("nir") and declared("test") >= declared("all") | declared("docs")
    assert {"norse", "spikingjelly", "snntorch"} <= declared("test")


def test_no_requirement_is_pinned_exactly():
    requirements = PROJECT["dependencies"] + sum(PROJECT["optional-dependencies"].values(), [])
    assert not [r for r in requirements if re.search(r"==|<|~=", r)], requirements


@pytest.mark.parametrize("extra", sorted(_extras.EXTRAS))
def test_the_guard_checks_exactly_what_the_extra_installs(extra):
    """sparsegrad/_extras.py lists import names; pyproject lists distributions: the same set."""
    guard = set().union(*(distributions_of(module) for module in _extras.EXTRAS[extra]))
    assert guard == declared(extra) - declared(None), (extra, guard ^ (declared(extra) - declared(None)))


# ------------------------------------------------------------------------------ the guards


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)


def blocked(modules) -> str:
    """Code that makes ``modules`` missing in a fresh interpreter (``import`` and ``find_spec``
    see ``sys.modules[name] = None`` as not installed)."""
    return f"import sys\nfor name in {list(modules)!r}:\n    sys.modules[name] = None\n"


def test_the_core_imports_with_every_extra_missing():
    code = blocked(NOT_IN_CORE) + (
        "import torch, timm\n"
        "import sparsegrad\n"
        "from sparsegrad import LIF, MaskedGradient, TemporalWeightedHead\n"
        "net = torch.nn.Sequential(torch.nn.Linear(4, 8), LIF(backend='torch'), torch.nn.Linear(8, 3))\n"
        "msg = MaskedGradient(p=1.0).attach(net)\n"
        "head = TemporalWeightedHead(net, T=2)\n"
        "x = torch.rand(2, 5, 4, requires_grad=True)\n"
        "head(x).sum().backward()\n"
        "assert x.grad is not None and x.grad.abs().sum() == 0, x.grad\n"  # p = 1: every surrogate gradient dropped
        "timm.create_model('spiking_convnet_s', num_classes=10)\n"
        "print(sorted(n for n in sys.modules if n.startswith('sparsegrad.')))\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout
    for extra in _extras.EXTRAS:
        assert f"'sparsegrad.{extra}" not in loaded, f"import sparsegrad loads sparsegrad.{extra}"


@pytest.mark.parametrize("extra", sorted(_extras.EXTRAS))
def test_an_extras_subpackage_names_its_extra_when_a_module_is_missing(extra):
    # the extra's last package that a core install lacks: tonic, tensorboard, scipy, nir
    module = [name for name in _extras.EXTRAS[extra] if name in NOT_IN_CORE][-1]
    proc = run_python(blocked([module]) + f"import sparsegrad.{extra}\n")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"ImportError: sparsegrad.{extra} needs {module}, which the core install leaves out: "
        f"pip install 'sparsegrad[{extra}]'"
    ), proc.stderr


def test_require_names_every_missing_module(monkeypatch):
    present = {"tonic", "torchvision", "PIL", "tqdm"}
    monkeypatch.setattr(_extras.importlib.util, "find_spec", lambda name: object() if name in present else None)
    with pytest.raises(ImportError) as error:
        _extras.require("train", "sparsegrad.train")
    assert str(error.value) == (
        "sparsegrad.train needs accelerate, tyro, matplotlib, tensorboard, safetensors, which the core "
        "install leaves out: pip install 'sparsegrad[train]'"
    )
    present |= {"accelerate", "tyro", "matplotlib", "tensorboard", "safetensors"}
    _extras.require("train", "sparsegrad.train")  # all there: no error

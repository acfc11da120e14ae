"""The locked environment: requirements.lock pins every dependency with hashes, `make setup`
installs from it, environment.yml carries the same versions, and torch's own needs are pinned."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as normalized_name

from posecore.files import REPO_ROOT

LOCK = REPO_ROOT / "requirements.lock"


def lock_pins() -> dict[str, str]:
    """{normalized name: version} of requirements.lock, each entry checked to carry hashes."""
    pins = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        first = entry.split()[0] if entry[:1].isalnum() else ""
        if "==" not in first:
            continue
        name, version = first.split("==")
        assert "--hash=sha256:" in entry, f"{name} has no hash in {LOCK.name}"
        pins[normalized_name(name)] = version
    return pins


def makefile_variable(name: str) -> str:
    match = re.search(rf"^{name} \?= (.+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    return match.group(1).strip()


def test_lock_pins_every_dependency_of_posecore_exactly():
    pins = lock_pins()
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    missing = [r for r in wanted if normalized_name(Requirement(r).name) not in pins]
    assert not missing, f"{LOCK.name} lacks {missing}: run `make lock`"
    for name in (
        "numpy",
        "opencv-python-headless",
        "pycocotools",
        "matplotlib",
        "onnxruntime",
        "papermill",
        "hypothesis",
        "pip",
        "setuptools",
    ):
        assert re.fullmatch(r"\d+(\.\d+)*(\.post\d+)?", pins[name]), (name, pins[name])
    assert "torch" not in pins  # torch is the Makefile's TORCH_SPEC, installed after the lock


def test_the_lock_holds_torchs_own_dependencies():
    """torch, installed after the lock, must find its requirements already satisfied by pins."""
    pins = lock_pins()
    needed = [Requirement(r) for r in importlib.metadata.requires("torch") or []]
    needed = [r for r in needed if r.marker is None or r.marker.evaluate({"extra": ""})]
    assert needed
    for requirement in needed:
        name = normalized_name(requirement.name)
        assert name in pins, f"torch needs {requirement}, which {LOCK.name} does not pin"
        assert requirement.specifier.contains(pins[name], prereleases=True), (requirement, pins[name])


def test_setup_installs_from_the_lock_and_environment_yml_has_its_versions():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in makefile and re.search(r"^LOCK := requirements.lock$", makefile, re.M)
    setup = makefile.split("$(STAMP):")[1].split("\n\n")[0]
    assert "$(LOCK)" in setup.splitlines()[0]  # a changed lock re-runs setup
    conda = re.findall(r"^      - (\S+)$", (REPO_ROOT / "environment.yml").read_text(), re.M)
    conda_pins = {normalized_name(item.split("==")[0]): item.split("==")[1] for item in conda if "==" in item}
    torch_spec = makefile_variable("TORCH_SPEC")
    assert conda_pins.pop("torch") == torch_spec.split("==")[1]
    assert conda_pins == lock_pins()

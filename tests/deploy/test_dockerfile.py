"""The images: a target per service the manifests run, pinned base, non-root, hash-checked dependencies."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from deploy.k8s.generate.catalog import SERVICES
from deploy.k8s.generate.render import BASE

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_IN = ROOT / "deploy" / "docker" / "requirements-runtime.in"
RUNTIME_LOCK = ROOT / "deploy" / "docker" / "requirements-runtime.lock"


@dataclass
class Stage:
    name: str
    parent: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and the stages, instructions joined across line continuations."""
    lines = re.sub(r"\\\n", " ", text).splitlines()
    arguments: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            current = Stage(name=words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else "", parent=words[0])
            stages[current.name] = current
        elif current is None and instruction == "ARG":
            name, _, default = rest.partition("=")
            arguments[name] = default
        elif current is not None:
            current.instructions.append((instruction, rest))
    return arguments, stages


def _effective(stages: dict[str, Stage], name: str, instruction: str) -> str | None:
    """The last value of `instruction` in the stage or, failing that, in the stages it is built FROM."""
    stage = stages[name]
    found = [rest for kind, rest in stage.instructions if kind == instruction]
    if found:
        return found[-1]
    return _effective(stages, stage.parent, instruction) if stage.parent in stages else None


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    return parse(DOCKERFILE.read_text())


def _manifest_images() -> set[str]:
    images = set()
    for path in BASE.glob("services/*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                spec = doc["spec"]["template"]["spec"]
                images |= {c["image"] for c in [*spec["containers"], *spec.get("initContainers", [])]}
    return images


def test_every_image_the_manifests_run_is_a_target_running_that_service(dockerfile) -> None:
    _, stages = dockerfile
    images = _manifest_images()
    assert images == {f"amiflow/{s.name}" for s in SERVICES}
    for image in images:
        service = image.split("/")[-1]
        assert service in stages, f"no Dockerfile target {service}"
        assert _effective(stages, service, "ENTRYPOINT") == f'["python", "-m", "{service}.main"]'


def test_the_base_image_is_a_pinned_python_3_11_slim(dockerfile) -> None:
    arguments, stages = dockerfile
    bases = {stage.parent for stage in stages.values() if stage.parent not in stages}
    assert bases == {"${PYTHON_IMAGE}"}
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", arguments["PYTHON_IMAGE"])


def test_every_target_runs_as_a_numeric_non_root_user(dockerfile) -> None:
    _, stages = dockerfile
    targets = [s.name for s in SERVICES] + ["toolbox"]
    for target in targets:
        user = _effective(stages, target, "USER")
        assert user is not None and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), f"{target}: USER {user}"
    manifests_user = {doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
                      for path in BASE.glob("services/*.yaml") for doc in yaml.safe_load_all(path.read_text())
                      if doc and doc["kind"] == "Deployment"}
    assert manifests_user == {int(_effective(stages, "ingest", "USER").split(":")[0])}


def test_dependencies_are_installed_from_the_lock_with_hashes(dockerfile) -> None:
    _, stages = dockerfile
    runs = " ".join(rest for stage in stages.values() for kind, rest in stage.instructions if kind == "RUN")
    assert "--require-hashes" in runs and "requirements-runtime.lock" in DOCKERFILE.read_text()
    for command in re.findall(r"pip install[^&]*", runs):
        assert "-r " in command and "--require-hashes" in command, command


def test_no_secret_is_baked_into_an_image(dockerfile) -> None:
    _, stages = dockerfile
    for stage in stages.values():
        for kind, rest in stage.instructions:
            if kind in ("ENV", "ARG"):
                assert not re.search(r"PASSWORD|SECRET|TOKEN|_KEY\b", rest, re.I), rest


def test_the_build_context_holds_only_what_the_dockerfile_copies(dockerfile) -> None:
    _, stages = dockerfile
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore, "everything is excluded unless named"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for stage in stages.values():
        for kind, rest in stage.instructions:
            if kind == "COPY" and "--from=" not in rest:
                source = shlex.split(rest)[0]
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is not let through .dockerignore"


def _pins(path: Path) -> dict[str, str]:
    return {name.lower(): version for name, version in
            re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", path.read_text(), re.M)}


def test_the_images_install_the_versions_the_suite_runs() -> None:
    suite, images = _pins(ROOT / "requirements.lock"), _pins(RUNTIME_LOCK)
    assert images and {name: suite.get(name) for name in images} == images
    assert not {"pytest", "mypy", "ruff", "hypothesis", "matplotlib", "uv"} & set(images), "no dev tools in images"


def test_the_runtime_requirements_are_the_runtime_part_of_requirements_in() -> None:
    def requirements(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]

    whole = (ROOT / "requirements.in").read_text()
    runtime_part = whole.split("# development and test")[0]
    assert requirements(RUNTIME_IN.read_text()) == requirements(runtime_part)


def test_every_image_of_every_overlay_is_a_dockerfile_target(dockerfile, rendered) -> None:
    _, stages = dockerfile
    for overlay, documents in rendered.items():
        text = yaml.safe_dump_all(documents)
        targets = {image.split(":")[0].rsplit("/", 1)[-1] for image in re.findall(r"image: (\S+)", text)}
        assert targets and targets <= set(stages), overlay

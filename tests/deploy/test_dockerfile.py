"""The images: a target per service the manifests run, pinned bases, non-root, hash-checked dependencies, and
the console's image with its web app built from the lock."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from deploy.k8s.generate.catalog import CONSOLE, SERVICES
from deploy.k8s.generate.render import BASE

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_IN = ROOT / "deploy" / "docker" / "requirements-runtime.in"
RUNTIME_LOCK = ROOT / "deploy" / "docker" / "requirements-runtime.lock"
WEB = ROOT / "services" / "console" / "web"
# Every image the manifests run: the six services and the console.
IMAGES = [*(s.name for s in SERVICES), CONSOLE.name]


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
    assert images == {f"amiflow/{name}" for name in IMAGES}
    for image in images:
        service = image.split("/")[-1]
        assert service in stages, f"no Dockerfile target {service}"
        assert _effective(stages, service, "ENTRYPOINT") == f'["python", "-m", "{service}.main"]'


def test_the_base_image_is_a_pinned_python_3_11_slim(dockerfile) -> None:
    arguments, stages = dockerfile
    bases = {name: stage.parent for name, stage in stages.items() if stage.parent not in stages}
    # Node.js only builds the console's web app; every image that runs is built on Python.
    assert bases == {"dependencies": "${PYTHON_IMAGE}", "platform": "${PYTHON_IMAGE}", "web": "${NODE_IMAGE}"}
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", arguments["PYTHON_IMAGE"])
    for image in [*IMAGES, "toolbox"]:
        assert _root_stage(stages, image) == "platform", image


def _root_stage(stages: dict[str, Stage], name: str) -> str:
    parent = stages[name].parent
    return _root_stage(stages, parent) if parent in stages else name


def _version(text: str) -> tuple[int, int, int]:
    major, minor, patch = [*(int(part) for part in text.split(".")), 0, 0][:3]
    return major, minor, patch


def node_accepts(engines: str, node: tuple[int, int, int]) -> bool:
    """npm's range for the forms package-lock.json files use here: `>=x.y.z`, `^x.y.z`, joined by `||`;
    another form raises, so that this reading is taught it rather than guessing."""
    for alternative in engines.split("||"):
        comparators = re.findall(r"(>=|\^)\s*(\d+(?:\.\d+){0,2})(?=\s|$)", alternative.strip())
        if (not comparators or "".join(op + v for op, v in comparators) != re.sub(r"\s+", "", alternative)
                or any(op == "^" and v.startswith("0") for op, v in comparators)):  # ^0.x pins the minor
            raise ValueError(f"engines.node {engines!r}: a form this check does not read")
        if all(node >= _version(v) and (op == ">=" or node[0] == _version(v)[0]) for op, v in comparators):
            return True
    return False


def test_the_web_app_is_built_by_a_pinned_node_that_every_locked_package_accepts(dockerfile) -> None:
    arguments, _ = dockerfile
    pinned = re.fullmatch(r"node:(\d+\.\d+\.\d+)-bookworm-slim(@sha256:[0-9a-f]{64})?", arguments["NODE_IMAGE"])
    assert pinned, arguments["NODE_IMAGE"]
    node = _version(pinned.group(1))
    # The lock's packages, the console's own ("") among them: npm ci warns on a mismatch and builds anyway, so a
    # Vite that needs a newer Node would fail later, in the image build.
    packages = json.loads((WEB / "package-lock.json").read_text())["packages"]
    engines = {name or "amiflow-console": spec["engines"]["node"] for name, spec in packages.items()
               if isinstance(spec.get("engines"), dict) and "node" in spec["engines"]}
    assert "amiflow-console" in engines and "node_modules/vite" in engines
    assert {name: wanted for name, wanted in engines.items() if not node_accepts(wanted, node)} == {}


@pytest.mark.parametrize(("engines", "accepted"), [
    (">=20.19", True), (">= 16", True), ("^20.19.0 || >=22.12.0", True), ("^18.0.0 || >=22", False),
    ("^20.21.0", False), (">=20.20.3", False), ("^8.16.0 || ^10.6.0 || >=11.0.0", True),
])
def test_the_engines_reading_follows_npm(engines: str, accepted: bool) -> None:
    assert node_accepts(engines, (20, 20, 2)) is accepted


def test_an_engines_form_it_cannot_read_is_refused() -> None:
    with pytest.raises(ValueError, match="does not read"):
        node_accepts("20.x", (20, 20, 2))


def test_the_console_image_serves_the_web_app_built_from_the_lock(dockerfile) -> None:
    _, stages = dockerfile
    web = stages["web"].instructions
    runs = [rest for kind, rest in web if kind == "RUN"]
    # npm ci installs exactly the lock (and checks its integrity hashes); npm install could change it.
    assert runs == ["npm ci --no-audit --no-fund", "npm run build"]
    copies = [shlex.split(rest) for kind, rest in web if kind == "COPY"]
    assert copies[0][:-1] == ["services/console/web/package.json", "services/console/web/package-lock.json"], \
        "the install layer depends on the manifest and the lock only"
    console = stages[CONSOLE.name].instructions
    from_web = [shlex.split(rest) for kind, rest in console if kind == "COPY" and "--from=web" in rest]
    (only,) = from_web
    assert only[1] == f"{_effective(stages, 'web', 'WORKDIR')}/dist", "only the build output, no node_modules"
    environment = dict(re.findall(r"(\w+)=(\S+)", " ".join(rest for kind, rest in console if kind == "ENV")))
    assert environment["CONSOLE_WEB_DIST"] == only[2], "the console looks where the files are"
    assert _effective(stages, CONSOLE.name, "CMD") == '["api"]'


def test_every_target_runs_as_a_numeric_non_root_user(dockerfile) -> None:
    _, stages = dockerfile
    targets = [*IMAGES, "toolbox"]
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


def _ignore_rules() -> list[tuple[bool, str]]:
    """(excludes, pattern) per line of .dockerignore, in order."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    return [(not line.startswith("!"), line.lstrip("!").rstrip("/")) for line in lines
            if line and not line.startswith("#")]


def _matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern excludes a path when it matches the path or one of its parent folders;
    `*` stays within one folder name, `**/` stands for any number of folders."""
    parts, globs = path.split("/"), pattern.split("/")
    if pattern.startswith("**/"):
        return any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
    return len(globs) <= len(parts) and all(fnmatch.fnmatchcase(p, g) for p, g in zip(parts, globs, strict=False))


def in_build_context(path: str) -> bool:
    """Whether .dockerignore lets `path` (relative to the repository) into the build context."""
    excluded = False
    for excludes, pattern in _ignore_rules():
        if _matches(pattern, path):
            excluded = excludes
    return not excluded


def test_the_build_context_holds_only_what_the_dockerfile_copies(dockerfile) -> None:
    _, stages = dockerfile
    assert (True, "*") in _ignore_rules(), "everything is excluded unless named"
    copied = []
    for stage in stages.values():
        for kind, rest in stage.instructions:
            if kind == "COPY" and "--from=" not in rest:
                for source in shlex.split(rest)[:-1]:
                    assert (ROOT / source).exists(), source
                    assert in_build_context(source.rstrip("/")), f"{source} is not let through .dockerignore"
                    copied.append(source.rstrip("/"))
    # ... and nothing else is: each path let through is one the Dockerfile copies (or the Dockerfile).
    let_through = {pattern for excludes, pattern in _ignore_rules() if not excludes} - {"Dockerfile"}
    assert let_through <= set(copied), f"let through but copied by nothing: {sorted(let_through - set(copied))}"


def test_the_build_context_reading_follows_docker(dockerfile) -> None:
    # What the check above relies on: a local install or build of the web app stays out of the image.
    assert in_build_context("services/console/web/src/main.ts")
    assert in_build_context("services/console/web/package-lock.json")
    assert not in_build_context("services/console/web/node_modules/vue/package.json")
    assert not in_build_context("services/console/web/dist/index.html")
    assert not in_build_context("services/console/tests/unit/test_console_app.py")
    assert not in_build_context("services/vee/vee/__pycache__/main.cpython-311.pyc")
    assert not in_build_context("data/vee.db")


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

"""Offline validation of the manifests: kustomize builds, Kubernetes and CRD schemas, no cluster needed.

kustomize is installed by `make k8s-tools` (the Go module proxy, version pinned in the Makefile) into
.tools/bin; the operators' CRDs are read from ../shared/data/crds/ beside the clone (they are not
project files). tests/deploy runs all of this in `make test`.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[3]
K8S_DIR = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
CRD_DIR = ROOT.parent / "shared" / "data" / "crds"
# The oldest Kubernetes minor still supported upstream when this was written (1.35 to 1.37): manifests that
# validate against it use no field a supported cluster lacks.
KUBERNETES_VERSION = "1.35.0"
KUSTOMIZE = ROOT / ".tools" / "bin" / "kustomize"

Document = dict[str, Any]


def pinned_kustomize_version() -> str:
    """The kustomize version the Makefile installs."""
    found = re.search(r"^KUSTOMIZE_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    if not found:
        raise ValueError("the Makefile pins no KUSTOMIZE_VERSION")
    return found.group(1)


def kustomize_build(directory: Path) -> list[Document]:
    """The documents `kustomize build` makes of one kustomization."""
    if not KUSTOMIZE.is_file():
        raise FileNotFoundError(f"{KUSTOMIZE} is missing: `make k8s-tools` installs it from the Go module proxy")
    done = subprocess.run([str(KUSTOMIZE), "build", str(directory)], capture_output=True, text=True,  # noqa: S603
                          check=False)
    if done.returncode:
        raise ValueError(f"kustomize build {directory} failed:\n{done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


# --- Kubernetes' own kinds: the JSON schemas kubernetes-validate ships, strict (no unknown fields) ---

def _core_schema_dir() -> Path:
    import kubernetes_validate

    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"


@functools.cache
def _core_registry() -> Registry:
    definitions = json.loads((_core_schema_dir() / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def core_validator(api_version: str, kind: str) -> jsonschema.Validator | None:
    """The validator of a built-in kind, None when Kubernetes has no such kind (a CRD's, or a typo)."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _core_schema_dir() / f"{kind.lower()}-{group_version}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    registry = Resource.from_contents(schema) @ _core_registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


# --- the operators' kinds: each CRD's openAPIV3Schema, unknown fields refused as `kubectl apply` does ---

def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused wherever the API server would prune or refuse them."""
    if isinstance(schema, dict):
        strict = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in strict and "additionalProperties" not in strict
                and not strict.get("x-kubernetes-preserve-unknown-fields")):
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Validator]:
    """(apiVersion, kind) -> validator, for every served version of every CRD in ../shared/data/crds."""
    if not CRD_DIR.is_dir():
        raise FileNotFoundError(f"{CRD_DIR} is missing: the suite expects ../shared beside the clone, as CI has it")
    found = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _strict(version["schema"]["openAPIV3Schema"])
                found[(f"{group}/{version['name']}", kind)] = jsonschema.Draft202012Validator(schema)
    return found


# --- the Prometheus Operator's kinds: a focused schema, not the CRD ---
# No package this project can install offline carries the monitoring.coreos.com CRDs' openAPIV3 schemas
# (@kubernetes-models/prometheus-operator on npm has compiled validators, cloudcoil's PyPI models pydantic
# classes). So the fields amiflow uses are written out here from the operator's API reference, strictly:
# a field outside them is refused even where the CRD would take it. Add a field here when you use one.
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                          r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"}, "labels": _STRINGS,
    "annotations": _STRINGS}}


def _kind(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
            "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": _METADATA,
                           "spec": spec}}


def _closed(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


_SERVICE_MONITOR = _kind("monitoring.coreos.com/v1", "ServiceMonitor", _closed(
    ["selector", "endpoints"],
    selector=_closed([], matchLabels=_STRINGS),
    namespaceSelector=_closed([], any={"type": "boolean"}, matchNames={"type": "array", "items": {"type": "string"}}),
    jobLabel={"type": "string"},
    endpoints={"type": "array", "minItems": 1, "items": _closed(
        ["port"], port={"type": "string", "minLength": 1}, path={"type": "string", "pattern": "^/"},
        scheme={"enum": ["http", "https"]}, interval=_DURATION, scrapeTimeout=_DURATION,
        honorLabels={"type": "boolean"})},
))
_PROMETHEUS_RULE = _kind("monitoring.coreos.com/v1", "PrometheusRule", _closed(["groups"], groups={
    "type": "array", "items": _closed(["name", "rules"], name={"type": "string", "minLength": 1},
                                      interval=_DURATION, rules={"type": "array", "items": _closed(
                                          ["expr"], alert={"type": "string", "minLength": 1},
                                          record={"type": "string", "minLength": 1},
                                          expr={"type": "string", "minLength": 1}, labels=_STRINGS,
                                          annotations=_STRINGS, **{"for": _DURATION, "keep_firing_for": _DURATION})})}))
FOCUSED_VALIDATORS = {("monitoring.coreos.com/v1", schema["properties"]["kind"]["const"]):
                      jsonschema.Draft202012Validator(schema) for schema in (_SERVICE_MONITOR, _PROMETHEUS_RULE)}


def schema_errors(document: Document) -> list[str]:
    """Why the API server would refuse `document` (empty when it validates); an unknown kind is an error."""
    key = (document.get("apiVersion", ""), document.get("kind", ""))
    validator = crd_validators().get(key) or FOCUSED_VALIDATORS.get(key) or core_validator(*key)
    if validator is None:
        return [f"no schema for {key[0]} {key[1]}: neither a Kubernetes {KUBERNETES_VERSION} kind nor a known CRD"]
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(document)]


def named(documents: list[Document], kind: str, name: str) -> Document:
    """The one document of a kind and name."""
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    if len(found) != 1:
        raise LookupError(f"expected one {kind} {name}, found {len(found)}")
    return found[0]

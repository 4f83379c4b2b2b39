"""Kubernetes manifests of amiflow generated from what the code says: `python -m deploy.k8s.generate`.

The kustomize base under deploy/k8s/base/ is written by this package from the topic registry
(schemas/amiflow_schemas/topics.py) and the service catalog in `catalog.py`; the overlays (dev, prod)
are written by hand. `--check` compares the committed base with what would be written, and
tests/deploy fails when they differ: a topic added to the registry without its KafkaTopic, or a
service reading a new topic without its ACL, cannot reach a cluster unnoticed.
"""

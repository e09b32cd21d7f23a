"""Regenerate the vendored KEDA schemas (keda-*.json) from the KEDA CRDs as packaged on PyPI.

The CRDs' openAPIV3Schema reaches PyPI as the `cloudcoil-models-keda` models (generated from KEDA's CRDs, one
release per KEDA release). Run in a throwaway virtualenv, never in the project's:

    python3 -m venv /tmp/keda && /tmp/keda/bin/pip install cloudcoil-models-keda==2.16.1.0
    /tmp/keda/bin/python deploy/kubernetes/schemas/regenerate_keda.py

The output is a strict JSON Schema: unknown fields are errors, as `kubectl apply` (server-side field validation)
makes them.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DROP = {"title", "default"}


def _clean(node: Any) -> Any:
    if isinstance(node, list):
        return [_clean(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _clean(v) for k, v in node.items() if k not in DROP}
    any_of = out.get("anyOf")
    if isinstance(any_of, list):
        kept = [s for s in any_of if s != {"type": "null"}]
        if len(kept) == 1:
            del out["anyOf"]
            out.update(kept[0])
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def main() -> None:
    from cloudcoil.models.keda import v1alpha1 as keda

    source = f"cloudcoil-models-keda {version('cloudcoil-models-keda')} (KEDA CRDs, keda.sh/v1alpha1)"
    for kind in ("ScaledObject", "TriggerAuthentication"):
        schema = _clean(getattr(keda, kind).model_json_schema(by_alias=True, mode="validation"))
        schema = {"$comment": f"Vendored from {source} by regenerate_keda.py; do not edit.", **schema}
        (HERE / f"keda-{kind.lower()}.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

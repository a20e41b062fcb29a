"""Cut the slice of Twilio's OpenAPI description that tests/delivery/fake_twilio.py serves from the full file.

    python tests/data/extract_twilio_oai.py path/to/twilio_api_v2010.json > tests/data/twilio_api_v2010.slice.json

The full description (twilio/twilio-oai, spec/json/twilio_api_v2010.json, MIT: LICENSE.twilio-oai) is 1.8 MB
for 121 paths; the fake server speaks two operations. Kept, unchanged: the document's header (openapi, info,
servers, security), the security schemes, the POST operation of Messages.json and Calls.json with their
path-level fields, and every component schema those operations reference, followed transitively. Nothing is
edited, so a parameter the adapters send that Twilio does not know is still refused.
"""

from __future__ import annotations

import json
import sys
from typing import Any

RESOURCES = ("Messages", "Calls")
SCHEMA_REF = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    """Names of the component schemas a node refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
            found.add(ref[len(SCHEMA_REF):])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for resource in RESOURCES:
        path = f"/2010-04-01/Accounts/{{AccountSid}}/{resource}.json"
        item = spec["paths"][path]
        paths[path] = {k: v for k, v in item.items() if k not in ("get", "put", "delete", "patch")}
    schemas = spec["components"]["schemas"]
    wanted, todo = set(), _refs(paths)
    while todo:  # a schema's references are followed until none is new; the set of names is finite
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo |= _refs(schemas[name]) - wanted
    return {
        "openapi": spec["openapi"], "info": spec["info"], "servers": spec["servers"],
        "security": spec.get("security", []),
        "components": {"securitySchemes": spec["components"]["securitySchemes"],
                       "schemas": {name: schemas[name] for name in sorted(wanted)}},
        "paths": paths,
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        full = json.load(f)
    json.dump(extract(full), sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
    sys.stdout.write("\n")

"""Runs shellcheck on each `run:` script of the composite action in action.yml.

actionlint checks the scripts inside workflows but not an action's own metadata file, so CI
extracts them here. Runs with the venv's Python (ruamel.yaml comes with check-jsonschema).
"""

import subprocess
import sys

from ruamel.yaml import YAML

failed = False
with open("action.yml", encoding="utf-8") as f:
    action = YAML(typ="safe").load(f)
for index, step in enumerate(action["runs"]["steps"]):
    if "run" not in step:
        continue
    if step.get("shell") != "bash":
        print(f"action.yml: step {index} ({step.get('name')}): shell must be bash", file=sys.stderr)
        failed = True
        continue
    script = "#!/usr/bin/env bash\n" + step["run"]
    result = subprocess.run(["shellcheck", "-"], input=script, text=True, check=False)
    if result.returncode != 0:
        print(f"action.yml: step {index} ({step.get('name')}): shellcheck found problems", file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)

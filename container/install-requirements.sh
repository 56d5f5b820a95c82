#!/bin/sh
# Install the project's requirements and the runtime's with the pip on PATH (the image build's
# virtualenv). Run from the project root: requirements.txt is read where it is, so its nested
# "-r requirements/base.txt" and "-c constraints.txt" lines resolve against the project.
#   install-requirements.sh RUNTIME_REQUIREMENTS
# requirements.txt when the project has one, else the [project].dependencies of pyproject.toml.
# One pip resolve for both, so a project pin within the runtime's ranges wins; except for a
# hashed file (--hash, from pip-compile --generate-hashes, uv or poetry export): pip then checks
# hashes for every requirement, and the runtime's unhashed ranges would fail, so the hashed file
# is installed alone and the runtime's requirements by a second pip install.
set -eu

runtime_requirements=${1:?usage: install-requirements.sh RUNTIME_REQUIREMENTS}
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

if [ -f requirements.txt ]; then
    project_requirements=requirements.txt
elif [ -f pyproject.toml ]; then
    project_requirements=${TMPDIR:-/tmp}/djdeploy-project-requirements.txt
    python "$here/djdeploy_runtime/pyproject_deps.py" pyproject.toml >"$project_requirements"
else
    echo "djdeploy: the project has neither requirements.txt nor pyproject.toml" >&2
    exit 1
fi

if grep -q -e '--hash' "$project_requirements"; then
    pip install -r "$project_requirements"
    pip install -r "$runtime_requirements"
else
    pip install -r "$runtime_requirements" -r "$project_requirements"
fi

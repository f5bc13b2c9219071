#!/usr/bin/env bash
# Idempotent set-up for l2l-taskmix: creates .venv, installs PyTorch, builds learn2learn 0.2.0
# from source (its shipped C files do not compile on Python 3.11, upstream issue #413, so its
# .pyx files are re-cythonized first) and installs this project editable with its dev extras.
# A second run checks what is there and returns quickly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${L2L_TASKMIX_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="torch==2.14.1"
TORCHVISION_SPEC="torchvision==0.29.1"
L2L_VERSION="0.2.0"
STAMP="$VENV/.l2l-taskmix-setup"

say() { echo "[setup] $*"; }

# What the stamp records: when any of these change, the project install is redone.
fingerprint() {
    cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1
}

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=77" wheel
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] \
    && "$PY" -c "import learn2learn, l2l_taskmix" >/dev/null 2>&1; then
    say "already set up ($VENV); nothing to do"
    exit 0
fi

if ! "$PY" -c "import torch, torchvision, sys; sys.exit(not (torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')))" >/dev/null 2>&1; then
    say "installing $TORCH_SPEC $TORCHVISION_SPEC (large; taken from the local wheel cache where present)"
    "${PIP[@]}" "$TORCH_SPEC" "$TORCHVISION_SPEC"
else
    say "torch and torchvision already installed"
fi

if ! "$PY" -c "import learn2learn, sys; sys.exit(learn2learn.__version__ != '$L2L_VERSION')" >/dev/null 2>&1; then
    say "installing learn2learn's import-time dependencies (gym, scipy, requests, tqdm)"
    "${PIP[@]}" "numpy" "scipy" "gym" "requests" "tqdm" "cython>=3"
    say "building learn2learn $L2L_VERSION from source with re-cythonized .pyx files (upstream issue #413)"
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    "$PY" -m pip download -q --no-deps --no-binary :all: "learn2learn==$L2L_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/learn2learn-"$L2L_VERSION".tar.gz -C "$BUILD"
    (
        cd "$BUILD/learn2learn-$L2L_VERSION"
        "$VENV/bin/cythonize" -q -f -3 learn2learn/data/*.pyx
        # --no-deps: its declared gsutil and qpth are skipped (qpth pins numpy<2 and neither is
        # needed by MAML); what `import learn2learn` needs was installed above.
        "$PY" -m pip install -q --no-deps --no-build-isolation .
    )
else
    say "learn2learn $L2L_VERSION already installed"
fi

say "installing l2l-taskmix's dependencies and dev extras, then the project (editable)"
# The dependencies are read from pyproject.toml and installed without learn2learn: pip would
# otherwise try to resolve learn2learn's own declared requirements (qpth, gsutil), which do not
# build on Python 3.11. learn2learn itself was built above.
mapfile -t DEPS < <("$PY" - "$ROOT/pyproject.toml" <<'PYEOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["dev"]
print("\n".join(d for d in deps if not d.replace("_", "-").lower().startswith("learn2learn")))
PYEOF
)
"${PIP[@]}" "${DEPS[@]}"
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"

"$PY" -c "import learn2learn, l2l_taskmix; print('[setup] ok: learn2learn', learn2learn.__version__, '| l2l_taskmix', l2l_taskmix.__version__)"
fingerprint > "$STAMP"

#!/usr/bin/env bash
# Idempotent set-up for l2l-taskmix: creates .venv, installs PyTorch, installs this project
# editable with its benchmark, ray, docs and dev extras (tests run grids on a local Ray instance),
# then builds learn2learn 0.2.0 from source with
# `python -m l2l_taskmix.install_learn2learn` (its shipped C files do not compile on Python 3.11,
# upstream issue #413, so its .pyx files are re-cythonized first; the wheel is kept in
# ~/.cache/l2l-taskmix/wheels, or $L2L_TASKMIX_CACHE/wheels, and reused by the next venv). A
# second run checks what is there and returns quickly. It prints the time of each step at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${L2L_TASKMIX_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="torch==2.14.1"
TORCHVISION_SPEC="torchvision==0.29.1"
L2L_VERSION="0.2.0"  # what l2l_taskmix.install_learn2learn builds
STAMP="$VENV/.l2l-taskmix-setup"
# learn2learn's sdist is kept here: its examples/ are what tests/test_learn2learn_examples.py runs.
SDIST_DIR="${L2L_TASKMIX_SDIST_DIR:-$ROOT/.cache}"

say() { echo "[setup] $*"; }

# Seconds of each step, printed at the end.
TIMES=()
CLOCK=$(date +%s.%N)
lap() {  # lap NAME: the step NAME just ended
    local now
    now=$(date +%s.%N)
    TIMES+=("$1 $(awk -v a="$CLOCK" -v b="$now" 'BEGIN { printf "%.0f", b - a }') s")
    CLOCK=$now
}
START=$CLOCK

# What the stamp records: when any of these change, the project install is redone.
fingerprint() {
    cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1
}

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=77" wheel
    lap "virtual environment"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] && [ -f "$SDIST_DIR/learn2learn-$L2L_VERSION.tar.gz" ] \
    && "$PY" -c "from l2l_taskmix.install_learn2learn import is_installed; assert is_installed()" >/dev/null 2>&1; then
    say "already set up ($VENV); nothing to do"
    exit 0
fi

if ! "$PY" -c "import torch, torchvision, sys; sys.exit(not (torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')))" >/dev/null 2>&1; then
    say "installing $TORCH_SPEC $TORCHVISION_SPEC (large; taken from the local wheel cache where present)"
    "${PIP[@]}" "$TORCH_SPEC" "$TORCHVISION_SPEC"
else
    say "torch and torchvision already installed"
fi
lap "torch"

say "installing l2l-taskmix (editable) with its benchmark, ray, docs and dev extras"
# learn2learn is not a declared dependency (pip cannot install its 0.2.0 release on Python 3.11),
# so this resolves cleanly; it is built next, by the package's own module command.
"${PIP[@]}" --no-build-isolation -e "$ROOT[dev]"
lap "l2l-taskmix and its extras"

say "building learn2learn $L2L_VERSION (python -m l2l_taskmix.install_learn2learn; upstream issue #413)"
"$PY" -m l2l_taskmix.install_learn2learn --quiet --keep-sdist "$SDIST_DIR"
lap "learn2learn"

"$PY" -m pip check
"$PY" -c "import learn2learn, l2l_taskmix; print('[setup] ok: learn2learn', learn2learn.__version__, '| l2l_taskmix', l2l_taskmix.__version__)"
fingerprint > "$STAMP"
lap "checks"
say "times: $(IFS=,; echo "${TIMES[*]}" | sed 's/,/, /g'); total $(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s"

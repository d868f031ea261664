# Shared by scripts/serve, scripts/test and scripts/check: make .venv and install livesale.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS "" or "test,dev")
# The versions come from the lock files (scripts/lock writes them): requirements/lock.txt for
# the server alone, requirements/lock-dev.txt with the test and dev extras; pip checks every hash.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "livesale needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv ..." >&2
    "$python" -m venv .venv
fi
extras=${1:-}
spec="."
lock=requirements/lock.txt
if [ -n "$extras" ]; then
    spec=".[$extras]"
    lock=requirements/lock-dev.txt
fi
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    echo "Installing livesale${extras:+ with $extras} from $lock into .venv ..." >&2
    pip=(.venv/bin/python -m pip --quiet --disable-pip-version-check)
    "${pip[@]}" install --upgrade pip
    "${pip[@]}" install --require-hashes -r "$lock"
    "${pip[@]}" install --no-deps -e "$spec"
    if "${pip[@]}" check >/dev/null; then
        touch "$stamp"
    else
        "${pip[@]}" check >&2 || true
        echo "$lock does not satisfy pyproject.toml: run scripts/lock" >&2
        [ -n "${LIVESALE_RELOCK:-}" ] || exit 1  # scripts/lock needs only uv from .venv
    fi
fi

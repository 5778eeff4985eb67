#!/bin/sh
# The labelstream image's entrypoint: the first argument picks what runs.
#
#   ingest | inference | router | dispatcher | aggregator | monitor
#                     the service (python -m labelstream.<service>), configured by LABELSTREAM_* variables
#   <service> --check import the service and print the settings it would run with (JSON), then exit
#   triton [ARGS]     Triton Inference Server on the model repository baked into the image
#                     (TRITON_MODEL_REPOSITORY overrides it; TRITON_INSTANCE_KIND=KIND_CPU|KIND_GPU and
#                     TRITON_INSTANCE_COUNT rewrite every model's instance_group); ARGS go to tritonserver
#   create-topics ARGS  create the Kafka topics (deploy/image/create_topics.py --help)
#   settings          the table of every LABELSTREAM_* setting
#   labelstream ARGS  the labelstream command line
#   help              this text
# Anything else is executed as given (e.g. `sh` when debugging).
set -eu

SERVICES="ingest inference router dispatcher aggregator monitor"
LABELSTREAM_HOME="${LABELSTREAM_HOME:-/opt/labelstream}"

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}

is_service() {
    for s in $SERVICES; do
        [ "$s" = "$1" ] && return 0
    done
    return 1
}

run_triton() {
    site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    root="$site/pytriton/tritonserver"
    repo="${TRITON_MODEL_REPOSITORY:-$LABELSTREAM_HOME/models}"
    if [ ! -d "$repo" ]; then
        echo "triton: model repository $repo does not exist" >&2
        exit 2
    fi
    if [ -n "${TRITON_INSTANCE_KIND:-}" ]; then
        case "$TRITON_INSTANCE_KIND" in
            KIND_CPU|KIND_GPU) ;;
            *) echo "triton: TRITON_INSTANCE_KIND must be KIND_CPU or KIND_GPU, not '$TRITON_INSTANCE_KIND'" >&2; exit 2 ;;
        esac
        count="${TRITON_INSTANCE_COUNT:-1}"
        case "$count" in
            ''|*[!0-9]*|0) echo "triton: TRITON_INSTANCE_COUNT must be a positive integer, not '$count'" >&2; exit 2 ;;
        esac
        # The repository may be read-only (image layer, PVC): rewrite a copy in the writable /tmp.
        work="${TMPDIR:-/tmp}/triton-models"
        rm -rf "$work"
        cp -R "$repo" "$work"
        for config in "$work"/*/config.pbtxt; do
            [ -f "$config" ] || continue
            sed -i "s/^instance_group .*/instance_group [ { count: $count kind: $TRITON_INSTANCE_KIND } ]/" "$config"
        done
        repo="$work"
    fi
    # The Python-backend stub links libpython3.11.so; the venv's bin/ first on PATH makes the
    # models run with the venv's python and packages (shared/STACK.md).
    libdir=$(python -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "triton: model repository $repo" >&2
    exec "$root/bin/tritonserver" --model-repository="$repo" --backend-directory="$root/backends" "$@"
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift

if is_service "$cmd"; then
    if [ "${1:-}" = "--check" ] || [ "${1:-}" = "--help" ]; then
        exec python -c '
import importlib, json, sys
from labelstream.common.settings import Settings, SettingsError
service = sys.argv[1]
importlib.import_module(f"labelstream.{service}.__main__")
try:
    settings = Settings.from_env()
except SettingsError as exc:
    print(f"labelstream-{service}: {exc}", file=sys.stderr)
    sys.exit(2)
print(json.dumps({"service": service, "consumer_group": f"labelstream-{service}",
                  "settings": settings.redacted()}, indent=2))
' "$cmd"
    fi
    exec python -m "labelstream.$cmd" "$@"
fi

case "$cmd" in
    triton) run_triton "$@" ;;
    create-topics) exec python "$LABELSTREAM_HOME/create_topics.py" "$@" ;;
    settings) exec labelstream settings ;;
    labelstream) exec labelstream "$@" ;;
    help|--help|-h) usage ;;
    *) exec "$cmd" "$@" ;;
esac

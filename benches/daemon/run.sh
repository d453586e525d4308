#!/usr/bin/env bash
# Daemon benchmarks for `plugsync run` (measured, not asserted).
#
#   (a) latency from `git push` to converged for a Direct bump of one plugin (the daemon idle
#       before each push: the previous version gone, its status written), woken by a signed
#       webhook sent right after the push, by `--interval 1s` polling, and by the file watch on
#       a local remote (the default for file:// remotes); REPS repetitions each, min/median/max.
#       "Converged" = `docker ps` shows a container of the new version running, attached to
#       the fleet network with the plugin's alias, and answering GET / with that version
#       (checked every 50 ms). The same with the fleet behind the managed router
#       (`traffic: {router: haproxy}`, webhook-woken): "converged" = a request through a router
#       replica (Host: echo) answers with the new version; Direct is start-first there.
#   (b) cost of a no-change poll and of a one-file change on a generated repo of PLUGINS
#       plugins, all `suspended: true` so nothing starts on Docker: per-pass time from the
#       daemon's own histogram (plugsync_reconcile_duration_seconds, one pass per webhook with
#       --interval 1h), the first (cold) pass, and peak RSS (VmHWM) of the daemon.
#
# usage: benches/daemon/run.sh            (REPS=5 PLUGINS=10000 by default)
#        REPS=3 PLUGINS=2000 benches/daemon/run.sh
#        PLUGSYNC_BIN=/path/to/plugsync benches/daemon/run.sh   (skip the release build)
#        PARTS=big PLUGINS=2000 benches/daemon/run.sh             (only (b); PARTS=latency: only (a))
#        PARTS=latency MODES="webhook router" benches/daemon/run.sh   (DNS against the router)
#
# Needs: a Docker engine, git, curl, openssl, jq. The remote is a bare repository on local
# disk (file://); everything is created under a temp dir and removed on exit, and only Docker
# objects labelled with this run's fleet names are touched.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REPS=${REPS:-5}
PLUGINS=${PLUGINS:-10000}
PARTS=${PARTS:-latency big}
SECRET=bench-webhook-secret
RUN=$$
WORK=$(mktemp -d /tmp/psbench.XXXXXX)
DAEMON_PID=
FLEETS=()

for tool in docker git curl openssl jq; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "run.sh: Docker engine unreachable" >&2; exit 1; }

if [[ -z "${PLUGSYNC_BIN:-}" ]]; then
  echo "building the release binary …" >&2
  (cd "$ROOT" && cargo build --release --bin plugsync >&2)
  PLUGSYNC_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/plugsync
fi
[[ -x "$PLUGSYNC_BIN" ]] || { echo "run.sh: no binary at $PLUGSYNC_BIN" >&2; exit 1; }

for v in 1.0.0 1.1.0 1.2.0; do
  if ! docker image inspect "plugsync/echo-plugin:$v" >/dev/null 2>&1; then
    echo "plugsync/echo-plugin:$v missing: building the sample images with \`plugsync demo\` …" >&2
    "$PLUGSYNC_BIN" demo >&2
    break
  fi
done

now() { echo "$EPOCHREALTIME"; }                       # seconds.microseconds, no fork
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f\n", (b - a) * 1000 }'; }

stop_daemon() {
  if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  DAEMON_PID=
}

remove_fleet() { # fleet network
  local ids
  ids=$(docker ps -aq --filter "label=plugsync.fleet=$1"; docker ps -aq --filter "label=plugsync.router=$1")
  [[ -z "$ids" ]] || docker rm -f $ids >/dev/null 2>&1 || true
  docker network rm "$2" >/dev/null 2>&1 || true
}

cleanup() {
  stop_daemon
  for f in "${FLEETS[@]}"; do remove_fleet "$f" "$f"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "run.sh: command failed at line $LINENO" >&2' ERR
trap 'exit 130' INT TERM

git_() { git -c user.name=bench -c user.email=bench@plugsync.invalid -c commit.gpgsign=false "$@"; }

new_repo() { # dir → bare $dir/remote.git, clone $dir/work
  git init -q --bare --initial-branch=main "$1/remote.git"
  git init -q --initial-branch=main "$1/work"
  git -C "$1/work" remote add origin "$1/remote.git"
}

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
}

start_daemon() { # repo-url port cache-dir log interval [extra args…]
  local url=$1 port=$2 cache=$3 log=$4 interval=$5
  shift 5
  PLUGSYNC_LOG=${PLUGSYNC_LOG:-plugsync=info} PLUGSYNC_WEBHOOK_SECRET=$SECRET NO_COLOR=1 \
    "$PLUGSYNC_BIN" run --repo "$url" --branch main --listen "127.0.0.1:$port" --cache-dir "$cache" \
    --interval "$interval" "$@" >"$log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return
    sleep 0.05
  done
  echo "daemon did not come up; log:" >&2; tail -20 "$log" >&2; exit 1
}

webhook() { # port sha
  local body sig
  body=$(printf '{"ref":"refs/heads/main","after":"%s"}' "$2")
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')
  curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/hooks/git" \
    -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
    -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$body"
}

metric() { # port name → value (sum over label sets)
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.6f", s }'
}

# Whether a container of fleet/plugin at version runs, carries the alias and answers with it.
serving() { # fleet plugin version network
  local id info ip aliases
  id=$(docker ps -q --filter "label=plugsync.fleet=$1" --filter "label=plugsync.plugin=$2" \
    --filter "label=plugsync.version=$3" --filter status=running | head -1)
  [[ -n "$id" ]] || return 1
  info=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$4\"}}{{.IPAddress}} {{join .Aliases \",\"}}{{end}}" "$id" 2>/dev/null) || return 1
  ip=${info%% *}
  aliases=${info#* }
  [[ -n "$ip" && ",$aliases," == *",$2,"* ]] || return 1
  curl -s -m 1 "http://$ip:8080/" 2>/dev/null | grep -q "\"version\":\"$3\""
}

# Whether a request through the fleet's router (its first replica) answers with version.
routed() { # fleet plugin version network
  local id ip
  id=$(docker ps -q --filter "label=plugsync.router=$1" | head -1)
  [[ -n "$id" ]] || return 1
  ip=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$4\"}}{{.IPAddress}}{{end}}" "$id" 2>/dev/null) || return 1
  [[ -n "$ip" ]] || return 1
  curl -s -m 1 -H "Host: $2" "http://$ip:8080/" 2>/dev/null | grep -q "\"version\":\"$3\""
}

manifest() { # id version
  cat <<EOF
id: $1
version: $2
runtime:
  image: plugsync/echo-plugin:$2
  resources: { cpu: 250m, memory: 64Mi }
replicas: 1
env:
  ECHO_VERSION: "$2"
EOF
}

stats() { # values… → "min median max" (ms)
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%d %d %d\n", v[1], m, v[NR] }'
}

ROWS=()
row() { ROWS+=("$(printf '| %-62s | %3s | %9s | %9s | %9s |' "$@")"); }

# ------------------------------------------------------------------------------------------
# (a) push → converged latency

latency() { # mode: webhook | poll | watch | router
  local mode=$1 dir="$WORK/lat-$1" fleet="psb-$1-$RUN" port cache log check=serving
  FLEETS+=("$fleet")
  mkdir -p "$dir"
  new_repo "$dir"
  printf 'fleet: %s\nenvironment: Development\nbackend:\n  type: docker\n  network: %s\n' "$fleet" "$fleet" >"$dir/work/plugsync.yaml"
  if [[ $mode == router ]]; then
    printf 'traffic:\n  router: haproxy\n  image: plugsync/router:haproxy-local\n' >>"$dir/work/plugsync.yaml"
    check=routed
  fi
  mkdir -p "$dir/work/plugins/echo"
  manifest echo 1.0.0 >"$dir/work/plugins/echo/plugin.yaml"
  git_ -C "$dir/work" add -A && git_ -C "$dir/work" commit -qm "echo 1.0.0" && git_ -C "$dir/work" push -q origin main
  port=$(free_port)
  cache="$dir/cache"
  log="$dir/daemon.log"
  case $mode in
    webhook | router) start_daemon "file://$dir/remote.git" "$port" "$cache" "$log" 1h --no-watch ;;
    poll) start_daemon "file://$dir/remote.git" "$port" "$cache" "$log" 1s --no-watch ;;
    watch) start_daemon "file://$dir/remote.git" "$port" "$cache" "$log" 1h ;;
  esac
  local t=$SECONDS
  until "$check" "$fleet" echo 1.0.0 "$fleet"; do
    ((SECONDS - t < 60)) || { echo "initial converge timed out; log:" >&2; tail -20 "$log" >&2; exit 1; }
    sleep 0.05
  done
  local versions=(1.1.0 1.2.0 1.0.0) samples=() i v t0 t1 sha code
  for ((i = 0; i < REPS; i++)); do
    v=${versions[i % 3]}
    manifest echo "$v" >"$dir/work/plugins/echo/plugin.yaml"
    git_ -C "$dir/work" commit -qam "echo $v"
    sha=$(git -C "$dir/work" rev-parse HEAD)
    sleep "0.$((RANDOM % 10))"                          # decorrelate from the poll timer
    t0=$(now)
    git_ -C "$dir/work" push -q origin main
    if [[ $mode == webhook || $mode == router ]]; then
      code=$(webhook "$port" "$sha")
      [[ $code == 202 ]] || { echo "webhook answered $code" >&2; exit 1; }
    fi
    t=$SECONDS
    until "$check" "$fleet" echo "$v" "$fleet"; do
      ((SECONDS - t < 60)) || { echo "$mode: bump to $v timed out; log:" >&2; tail -20 "$log" >&2; exit 1; }
      sleep 0.05
    done
    t1=$(now)
    samples+=("$(elapsed_ms "$t0" "$t1")")
    echo "  $mode #$((i + 1)) → $v: ${samples[-1]} ms" >&2
    # The next push finds the daemon idle: the old instance gone, the status written.
    t=$SECONDS
    until [[ $(docker ps -aq --filter "label=plugsync.fleet=$fleet" --filter "label=plugsync.plugin=echo" | wc -l) == 1 ]]; do
      ((SECONDS - t < 30)) || { echo "$mode: the old instance never left" >&2; exit 1; }
      sleep 0.1
    done
    sleep 0.5
  done
  local passes cpu
  passes=$(metric "$port" plugsync_reconcile_duration_seconds_count)
  cpu=$(awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$DAEMON_PID/stat")
  stop_daemon
  remove_fleet "$fleet" "$fleet"
  read -r mn md mx < <(stats "${samples[@]}")
  local label
  case $mode in
    webhook) label="push -> converged, signed webhook (--interval 1h)" ;;
    poll) label="push -> converged, polling --interval 1s" ;;
    watch) label="push -> converged, file watch (default, --interval 1h)" ;;
    router) label="push -> converged behind the router, signed webhook" ;;
  esac
  row "$label" "$REPS" "$mn ms" "$md ms" "$mx ms"
  NOTES+=("$mode: ${passes%.*} reconcile passes, daemon CPU ${cpu}s over the whole run")
}

# ------------------------------------------------------------------------------------------
# (b) a big suspended fleet

big() {
  local dir="$WORK/big" fleet="psb-big-$RUN" port cache log
  FLEETS+=("$fleet")
  mkdir -p "$dir"
  new_repo "$dir"
  printf 'fleet: %s\nenvironment: Development\nbackend:\n  type: docker\n  network: %s\n' "$fleet" "$fleet" >"$dir/work/plugsync.yaml"
  local i id t0 t1
  t0=$(now)
  for ((i = 0; i < PLUGINS; i++)); do
    printf -v id 'svc-%05d' "$i"
    mkdir -p "$dir/work/plugins/$id"
    printf 'id: %s\nversion: 1.0.0\nruntime:\n  image: plugsync/echo-plugin:1.0.0\n  resources: { cpu: 100m, memory: 32Mi }\nreplicas: 1\nenv:\n  ECHO_VERSION: "1.0.0"\nsuspended: true\n' "$id" \
      >"$dir/work/plugins/$id/plugin.yaml"
  done
  git_ -C "$dir/work" add -A && git_ -C "$dir/work" commit -qm "$PLUGINS suspended plugins" && git_ -C "$dir/work" push -q origin main
  t1=$(now)
  echo "  generated and pushed $PLUGINS plugins in $(elapsed_ms "$t0" "$t1") ms" >&2

  port=$(free_port)
  cache="$dir/cache"
  log="$dir/daemon.log"
  t0=$(now)
  start_daemon "file://$dir/remote.git" "$port" "$cache" "$log" 1h --no-watch
  local t=$SECONDS
  until [[ "$(metric "$port" plugsync_reconcile_duration_seconds_count)" != 0.000000 ]]; do
    ((SECONDS - t < 1800)) || { echo "first pass over $PLUGINS plugins timed out; log:" >&2; tail -20 "$log" >&2; exit 1; }
    kill -0 "$DAEMON_PID" 2>/dev/null || { echo "daemon died; log:" >&2; tail -20 "$log" >&2; exit 1; }
    sleep 0.05
  done
  t1=$(now)
  local first_pass first_wall status_commits
  first_pass=$(awk -v s="$(metric "$port" plugsync_reconcile_duration_seconds_sum)" 'BEGIN { printf "%.0f", s * 1000 }')
  first_wall=$(elapsed_ms "$t0" "$t1")
  status_commits=$(git --git-dir "$dir/remote.git" rev-list --count plugsync/status 2>/dev/null || echo 0)
  echo "  first pass: ${first_pass} ms in the histogram, ${first_wall} ms from spawn (status commits: $status_commits)" >&2
  row "cold start, $PLUGINS suspended plugins: first pass (histogram)" 1 "$first_pass ms" "$first_pass ms" "$first_pass ms"
  row "cold start: spawn -> first pass recorded (wall)" 1 "$first_wall ms" "$first_wall ms" "$first_wall ms"
  local hwm_first
  hwm_first=$(awk '/VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status")

  # One pass per webhook: the histogram's sum moves by exactly that pass's duration.
  one_pass() { # sha → "pass_ms wall_ms"
    local c0 s0 c1 s1 a b code
    c0=$(metric "$port" plugsync_reconcile_duration_seconds_count)
    s0=$(metric "$port" plugsync_reconcile_duration_seconds_sum)
    a=$(now)
    code=$(webhook "$port" "$1")
    [[ $code == 202 ]] || { echo "webhook answered $code" >&2; exit 1; }
    local t=$SECONDS
    while :; do
      c1=$(metric "$port" plugsync_reconcile_duration_seconds_count)
      [[ "$c1" != "$c0" ]] && break
      ((SECONDS - t < 600)) || { echo "pass timed out" >&2; exit 1; }
      sleep 0.02
    done
    b=$(now)
    s1=$(metric "$port" plugsync_reconcile_duration_seconds_sum)
    awk -v s0="$s0" -v s1="$s1" -v c0="$c0" -v c1="$c1" 'BEGIN { printf "%.0f ", (s1 - s0) / (c1 - c0) * 1000 }'
    elapsed_ms "$a" "$b"
  }

  local idle=() idle_wall=() change=() change_wall=() r sha n
  for ((i = 0; i < REPS; i++)); do
    read -r p w < <(one_pass "$(git -C "$dir/work" rev-parse HEAD)")
    idle+=("$p"); idle_wall+=("$w")
    echo "  no-change pass #$((i + 1)): $p ms (webhook → recorded $w ms)" >&2
  done
  for ((i = 0; i < REPS; i++)); do
    n=$(( (i * 997) % PLUGINS ))
    printf -v id 'svc-%05d' "$n"
    printf '  BENCH_EDIT: "%s"\n' "$i" >>"$dir/work/plugins/$id/plugin.yaml"
    git_ -C "$dir/work" commit -qam "touch $id"
    git_ -C "$dir/work" push -q origin main
    sha=$(git -C "$dir/work" rev-parse HEAD)
    read -r p w < <(one_pass "$sha")
    change+=("$p"); change_wall+=("$w")
    echo "  one-file change ($id) pass #$((i + 1)): $p ms (webhook → recorded $w ms)" >&2
  done
  local rev
  rev=$(curl -fs "http://127.0.0.1:$port/api/v1/status" | jq -r .revision)
  [[ "$rev" == "$sha" ]] || echo "  WARNING: daemon reports revision $rev, expected $sha" >&2
  read -r mn md mx < <(stats "${idle[@]}")
  row "no-change pass, $PLUGINS plugins (histogram)" "$REPS" "$mn ms" "$md ms" "$mx ms"
  read -r mn md mx < <(stats "${idle_wall[@]}")
  row "no-change: webhook -> pass recorded (wall)" "$REPS" "$mn ms" "$md ms" "$mx ms"
  read -r mn md mx < <(stats "${change[@]}")
  row "one-file change pass, $PLUGINS plugins (histogram)" "$REPS" "$mn ms" "$md ms" "$mx ms"
  read -r mn md mx < <(stats "${change_wall[@]}")
  row "one-file change: webhook -> pass recorded (wall)" "$REPS" "$mn ms" "$md ms" "$mx ms"
  local hwm rss
  hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status")
  rss=$(awk '/VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status")
  row "daemon peak RSS (VmHWM) after the first pass" 1 "$((hwm_first / 1024)) MiB" "" ""
  row "daemon peak RSS (VmHWM) at the end / RSS now" 1 "$((hwm / 1024)) MiB" "$((rss / 1024)) MiB" ""
  NOTES+=("big: status branch holds $(git --git-dir "$dir/remote.git" rev-list --count plugsync/status 2>/dev/null || echo 0) commits; containers started: $(docker ps -aq --filter "label=plugsync.fleet=$fleet" | wc -l)")
  stop_daemon
}

NOTES=()
echo "binary: $PLUGSYNC_BIN; REPS=$REPS PLUGINS=$PLUGINS" >&2
if [[ " $PARTS " == *" latency "* ]]; then
  for mode in ${MODES:-webhook poll watch router}; do
    echo "(a) $mode …" >&2
    latency "$mode"
  done
fi
if [[ " $PARTS " == *" big "* ]]; then
  echo "(b) $PLUGINS suspended plugins …" >&2
  big
fi

echo
echo "plugsync daemon benchmark — $(date -u +%FT%TZ), $(nproc) CPUs, Docker $(docker version -f '{{.Server.Version}}'), REPS=$REPS"
printf '| %-62s | %3s | %9s | %9s | %9s |\n' "measurement" "n" "min" "median" "max"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "-----" "-----------" "-----------" "-----------"
printf '%s\n' "${ROWS[@]}"
echo
printf '  - %s\n' "${NOTES[@]}"

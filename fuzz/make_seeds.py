#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from examples/ and the shapes the tests use.

Run from the repository root: python3 fuzz/make_seeds.py. The seeds are kept in the repo;
libFuzzer grows its working corpus elsewhere (.ci/fuzz uses a temporary copy)."""
import hashlib, hmac, json, os, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"

def seed(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())

# fleet_tree: records "path \0 bytes" separated by \0\0\0
fleet = root / "examples" / "fleet"
records = []
for path in sorted(fleet.rglob("*")):
    if path.is_file():
        rel = path.relative_to(fleet).as_posix()
        records.append(rel.encode() + b"\0" + path.read_bytes())
        seed("fleet_tree", "one-" + rel.replace("/", "_"), records[-1])
seed("fleet_tree", "examples-fleet", b"\0\0\0".join(records))
seed("fleet_tree", "defect-3-time-zone", b"plugsync.yaml\0fleet: tz\nwindows:\n  - kind: deny\n    schedule: \"0 17 * * 5\"\n    duration: 60h\n    timeZone: \"+1\xc3\xa9X\"\n\0\0\0plugins/crm/plugin.yaml\0id: crm\nversion: 1.0.0\nruntime:\n  image: r/crm:1.0.0\n")
seed("fleet_tree", "rates-and-ab", b"plugins/crm/plugin.yaml\0id: crm\nversion: 1.6.0\nruntime:\n  image: r/crm:1.6.0\n\0\0\0rollouts/crm.json\0" + json.dumps({
    "pluginId": "crm", "versions": ["1.5.0", "1.6.0"], "strategy": "ABTesting",
    "abConfig": {"variantA": "1.5.0", "variantB": "1.6.0", "trafficSplit": {"A": 50, "B": 50},
                 "decisionMetrics": ["conversionRate", "errorRate"], "winnerThreshold": 0.05},
    "analysis": {"metrics": {"conversionRate": {"ratio": ["conversions_total", "http_requests_total"]}}}}).encode())
seed("fleet_tree", "cycle-and-bad-memory", b"plugins/a/plugin.yaml\0id: a\nversion: 1.0.0\nruntime:\n  image: r/a:1\n  resources: {memory: 512XB}\ndependsOn: [b]\n\0\0\0plugins/b/plugin.yaml\0id: b\nversion: 1.0.0\nruntime:\n  image: r/b:1\ndependsOn: [a]\n")

# status_branch: records "path \0 bytes" separated by 0xff
plugin_status = """plugin: crm
state: ACTIVE
desiredVersion: 1.1.0
strategy: Canary
revision: 34c50c9e2f1d
slots:
  stable: {version: 1.1.0, ready: 3, instances: 3}
rollout: {target: abc123, step: 2, paused: waiting for a person, promoted: false}
failed: {version: 1.2.0, revision: 0123456789, reason: never ready}
"""
fleet_status = "fleet: e2e\nrevision: 34c50c9e2f1d\nreconciledAt: 2026-12-04T10:00:00Z\nactive: 2\n"
seed("status_branch", "plugin-and-fleet", b"status/crm.yaml\0" + plugin_status.encode() + b"\xffstatus/fleet.yaml\0" + fleet_status.encode())
seed("status_branch", "multibyte-revision", b"status/crm.yaml\0" + plugin_status.replace("34c50c9e2f1d", "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9").encode())

# webhook: secret line, header lines, empty line, body
secret = "s3cret"
body = json.dumps({"ref": "refs/heads/main", "after": "34c50c9e2f1d34c50c9e2f1d34c50c9e2f1d34c5",
                   "repository": {"full_name": "platform/fleet", "clone_url": "https://git.example/platform/fleet.git"}}).encode()
sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
seed("webhook", "github-push", f"{secret}\nx-github-event: push\nx-hub-signature-256: {sig}\ncontent-type: application/json\nx-github-delivery: 1\n\n".encode() + body)
seed("webhook", "gitea-push", f"{secret}\nx-gitea-event: push\nx-gitea-signature: {sig[7:]}\n\n".encode() + body)
seed("webhook", "gitlab-push", f"{secret}\nx-gitlab-event: Push Hook\nx-gitlab-token: {secret}\n\n".encode() + json.dumps({"ref": "refs/heads/main", "checkout_sha": "34c50c9e", "project": {"path_with_namespace": "platform/fleet"}}).encode())
seed("webhook", "github-ping-unsigned", b"\nx-github-event: ping\n\n{\"zen\":\"x\"}")
seed("webhook", "form-encoded", f"{secret}\nx-github-event: push\ncontent-type: application/x-www-form-urlencoded\n\npayload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D".encode())

# metrics_text: the echo plugin's exposition, a Prometheus answer, router log lines
seed("metrics_text", "echo-metrics", """# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{path="root",code="200"} 120
http_requests_total{path="root",code="500"} 3
http_requests_total{path="health",code="200"} 40
conversions_total{plan="a"} 12
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{path="root",le="0.005"} 100
http_request_duration_seconds_bucket{path="root",le="0.1"} 120
http_request_duration_seconds_bucket{path="root",le="+Inf"} 123
http_request_duration_seconds_sum{path="root"} 0.9
http_request_duration_seconds_count{path="root"} 123
process_start_time_seconds 1.796e9
""")
seed("metrics_text", "prometheus-answer", '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1796000000,"0.25"]}]}}')
seed("metrics_text", "router-log", "be_crm stable-1 200 12 11\nbe_crm canary-3f 500 4 3\nbe_crm <NOSRV> 503 0 -1\n[NOTICE] (1) : haproxy version\n")
seed("metrics_text", "runtime-servers-state", "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight\n3 be_crm 1 stable-1a2b 172.18.0.4 2 0 256 256\n3 be_crm 2 canary-3c4d 172.18.0.5 2 0 85 85\n")

# docker_labels: a container as `docker inspect` shows it
inspect = {
    "Id": "3f2a", "Name": "/e2e-crm-stable-ab12", "RestartCount": 0,
    "Config": {"Image": "plugsync/echo-plugin:1.1.0", "Env": ["ECHO_VERSION=1.1.0", "PATH=/bin"],
               "Labels": {"plugsync.fleet": "e2e", "plugsync.plugin": "crm", "plugsync.version": "1.1.0",
                          "plugsync.revision": "34c50c9", "plugsync.spec-hash": "abc", "plugsync.slot": "canary",
                          "plugsync.spec": json.dumps({"plugin": "crm", "version": "1.1.0", "image": "plugsync/echo-plugin:1.1.0",
                                                       "env": {"ECHO_VERSION": "1.1.0"}, "port": 8080,
                                                       "liveness": "/health/live", "readiness": "/health/ready"})}},
    "HostConfig": {"NanoCpus": 500000000, "Memory": 134217728},
    "State": {"Status": "running", "OOMKilled": False, "ExitCode": 0},
    "NetworkSettings": {"Networks": {"plugsync-e2e": {"IPAddress": "172.18.0.5", "Aliases": ["crm", "3f2a"]}}},
}
seed("docker_labels", "running-canary", json.dumps(inspect))
inspect["State"] = {"Status": "exited", "OOMKilled": True, "ExitCode": 137}
inspect["Config"]["Labels"]["plugsync.slot"] = "n\u00e9ant"
seed("docker_labels", "oom-killed-odd-slot", json.dumps(inspect))

# schedules: schedule, zone, duration, quantity, rate, epoch seconds
for name, lines in {
    "berlin-dst": ["0 9 * * *", "Europe/Berlin", "1h", "512Mi", "0.05", "1774746000"],
    "fixed-offset": ["0 17 * * 5", "+02:00", "60h", "500m", "5%", "1796000000"],
    "defect-3": ["0 17 * * 5", "+1\u00e9X", "PT1H", "1.5", "\"99.5 %\"", "0"],
    "seconds-cron": ["*/15 * 9-17 * * MON-FRI", "America/New_York", "1h30m", "2G", "header:X-Tenant-ID", "1800000000"],
}.items():
    seed("schedules", name, "\n".join(lines) + "\n")
# compose_import: compose files as teams write them (the realistic one is the import test's)
tests = (root / "crates" / "core" / "src" / "import" / "tests.rs").read_text()
seed("compose_import", "realistic.yml", tests.split('r#"', 1)[1].split('"#', 1)[0])
seed("compose_import", "deployment.yaml", tests.split('pub const DEPLOYMENT: &str = r#"', 1)[1].split('"#', 1)[0])
seed("compose_import", "small.yml", """services:
  a:
    image: a:1.0.0
    ports: ["80:8080"]
    environment: ["X=${Y:-z}", "W"]
    healthcheck: {test: "curl -f http://localhost:8080/h"}
    depends_on: {b: {condition: service_started}}
  b:
    image: b
    mem_limit: 1g
    cpus: 1.5
    scale: 2
""")
print("seeds written under", corpus)

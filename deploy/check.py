#!/usr/bin/env python3
"""Static checks of the deployment files (no Docker engine or cluster needed).

- docker-compose.yml validates (`docker-compose config`) and follows the rules
  the drain and the topology need;
- the Kubernetes base renders (`kubectl kustomize`) and validates offline
  against the Kubernetes schemas (`kubernetes-validate --strict`); the optional
  monitoring and KEDA folders render;
- compose, Kubernetes and the native cluster all use nginx/nginx.conf unchanged;
- Prometheus scrapes the port the gateways serve metrics on;
- the image's dependency stage works: its COPY and RUN steps up to `cargo
  fetch` run in an empty folder exactly as a build runs them (no engine
  needed for the class of fault where cargo refuses the copied workspace).

Run from the repository root: python3 deploy/check.py
"""

import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S_VERSIONS = ["1.30.0", "1.33.0"]
failures = []
skipped = []


def check(ok, message):
    if not ok:
        failures.append(message)


def run(*args, **kwargs):
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"check: {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def seconds(text):
    """'25s', '1m30s', '500ms' -> seconds."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text)):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def drain_bound(env):
    return sum(seconds(env[k]) for k in ("CHORUS_DRAIN_GRACE", "CHORUS_DRAIN_WINDOW", "CHORUS_SHUTDOWN_TIMEOUT"))


def check_compose():
    run("docker-compose", "-f", "docker-compose.yml", "config", "-q")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, service in services.items():
        check("container_name" not in service, f"compose: {name} must not set container_name")
        published = service.get("ports", [])
        check(name == "nginx" or not published, f"compose: only nginx publishes ports, not {name}")
    check(services["nginx"]["ports"] == ["${CHORUS_PUBLISH:-8080}:8080"], "compose: nginx publishes 8080")
    gateway = services["gateway"]
    check(gateway.get("deploy", {}).get("replicas", 1) >= 3, "compose: three gateway replicas")
    check(
        seconds(gateway["stop_grace_period"]) > drain_bound(gateway["environment"]),
        "compose: stop_grace_period must exceed drain grace + window + shutdown timeout",
    )
    check(gateway["healthcheck"]["test"][-1] == "healthcheck", "compose: gateway health via chorus healthcheck")
    for name in ("gateway", "nginx", "prometheus"):
        for dependency, rule in services[name]["depends_on"].items():
            if dependency in ("redis", "gateway"):
                check(rule["condition"] == "service_healthy", f"compose: {name} waits for {dependency} to be healthy")
    mounts = services["nginx"]["volumes"]
    check("./nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in mounts, "compose: nginx runs nginx/nginx.conf")
    check("appendonly" in " ".join(services["redis"]["command"]), "compose: Redis with AOF")
    admin_port = gateway["environment"]["CHORUS_ADMIN_LISTEN"].rsplit(":", 1)[1]
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    sd = prometheus["scrape_configs"][0]["dns_sd_configs"][0]
    check(sd["names"] == ["gateway"] and str(sd["port"]) == admin_port,
          "prometheus.yml scrapes every gateway replica on the admin port")


def check_kubernetes():
    if shutil.which("kubectl") is None:
        print("check: SKIPPED the Kubernetes checks: kubectl (for kubectl kustomize) is not "
              "installed and could not be (install kubectl to run them)", file=sys.stderr)
        skipped.append("kubernetes")
        return
    rendered = run("kubectl", "kustomize", "deploy/k8s/base")
    path = ROOT / "target" / "k8s-base.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(rendered)
    for version in K8S_VERSIONS:
        run("kubernetes-validate", "--strict", "--quiet", "-k", version, str(path))
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    nginx_map = next(v for k, v in by_kind["ConfigMap"].items() if k.startswith("chorus-nginx"))
    check(nginx_map["data"]["nginx.conf"] == (ROOT / "nginx/nginx.conf").read_text(),
          "k8s: the edge runs nginx/nginx.conf unchanged")
    config = next(v for k, v in by_kind["ConfigMap"].items() if k.startswith("chorus-config"))["data"]
    gateway = by_kind["Deployment"]["chorus-gateway"]["spec"]["template"]["spec"]
    container = gateway["containers"][0]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    check(gateway["terminationGracePeriodSeconds"] > pre_stop + drain_bound(config),
          "k8s: terminationGracePeriodSeconds covers preStop + the drain bound")
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "k8s: readiness on /readyz")
    check(container["livenessProbe"]["httpGet"]["path"] == "/livez", "k8s: liveness on /livez")
    check(gateway.get("topologySpreadConstraints"), "k8s: gateways spread over nodes")
    check("PodDisruptionBudget" in by_kind and "HorizontalPodAutoscaler" in by_kind, "k8s: PDB and autoscaler")
    for optional in ("deploy/k8s/monitoring", "deploy/k8s/keda"):
        run("kubectl", "kustomize", optional)


def check_native():
    lib = (ROOT / "crates/localcluster/src/lib.rs").read_text()
    check("nginx.conf" in lib and "std::fs::copy(&options.nginx_conf" in lib,
          "native cluster copies nginx/nginx.conf unchanged")


def dockerfile_steps():
    """The build stage's instructions, continuation lines joined."""
    text = (ROOT / "deploy/Dockerfile").read_text().replace("\\\n", " ")
    steps = [line.strip() for line in text.splitlines()]
    return [s for s in steps if s and not s.startswith("#")]


def check_image_dependency_stage():
    """Runs the build stage's COPY and RUN steps up to `cargo fetch` in an empty folder."""
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        for step in dockerfile_steps():
            word, _, rest = step.partition(" ")
            if word == "COPY" and "--from" not in rest:
                *sources, dest = shlex.split(rest)
                for source in sources:
                    target = work / dest
                    if dest.endswith("/") or len(sources) > 1:
                        target = target / pathlib.Path(source).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if (ROOT / source).is_dir():
                        shutil.copytree(ROOT / source, target, dirs_exist_ok=True)
                    else:
                        shutil.copy(ROOT / source, target)
            elif word == "RUN":
                command = re.sub(r"--mount=\S+\s*", "", rest)
                if command.startswith("apt-get"):
                    continue  # the image's system packages; this machine has its own
                result = subprocess.run(["bash", "-c", command], cwd=work, capture_output=True, text=True)
                if result.returncode != 0:
                    failures.append(f"Dockerfile step failed outside an engine: RUN {command}\n{result.stderr[-2000:]}")
                    return
                if "cargo fetch" in command:
                    return
        failures.append("the Dockerfile has no `cargo fetch` step to check")


check_compose()
check_kubernetes()
check_native()
check_image_dependency_stage()
if failures:
    sys.exit("deployment checks failed:\n  " + "\n  ".join(failures))
kubernetes = "kubernetes SKIPPED (no kubectl)" if skipped else "kubernetes (" + ", ".join(K8S_VERSIONS) + ")"
print(f"deployment checks passed: compose, {kubernetes}, native, image dependency stage")

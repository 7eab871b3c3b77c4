#!/usr/bin/env python3
"""Runs docker-compose.yml for real and checks it end to end through nginx.

    python3 deploy/compose_check.py            # docker where it works, else podman

With Docker (`docker compose` or `docker-compose`) the images are pulled as
usual. Without it, podman runs the file (podman-compose from PyPI, the runc
runtime and limits of deploy/standins/containers.conf), and the images that
cannot be pulled are local stand-ins under the same names
(deploy/standins/build.sh). The compose file and deploy/Dockerfile are used
as they are; nothing is overridden.

What it checks, on the port nginx publishes on 127.0.0.1 (nothing else is
published; the containers talk on the project's own network):
  1. the gateway image builds from deploy/Dockerfile and every service starts
     and becomes healthy (under podman, which has no health timer without
     systemd, this script runs each container's health check every 2 s);
  2. two clients on different gateways chat through nginx, and history
     (the `history` command and GET /api/rooms/<room>/messages) has both lines;
     the server API (with a key made for the run, CHORUS_API_KEYS) posts as a
     bot to one user's connections on two gateways and lists both; a file
     goes up through nginx into the shared files volume, is attached to a
     message, and comes back from the gateways;
     nginx serves the browser client (/) and Grafana (/grafana/);
  3. /readyz of every gateway replica answers `ready`, and each one's
     /api/cluster lists every replica;
  4. Prometheus scrapes every replica (its /api/v1/targets);
  5. `up --scale gateway=5` adds replicas that serve clients and are scraped;
  6. stopping one gateway drains it: its clients get close 4000, resume on
     the others, and every message of a stream sent meanwhile arrives exactly
     once, in order;
  7. `down` leaves no container, pod, network or volume of the project.
Exit status 0 when all pass; on a failure it prints what failed and the logs
of the service concerned, and still runs `down`.

    python3 deploy/compose_check.py --redis-cluster

runs the profile redis-cluster instead (deploy/redis-cluster/compose.env):
the gateways on a Redis Cluster of three primaries with a replica each. It
checks 1 and 2 (the server API's listing there asks the gateways over the
cluster's shard channels), that a room's channel is a shard channel held by both
gateways of its members on the shard that owns it (and no ordinary channel
anywhere), and 7.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
STANDINS = ROOT / "deploy" / "standins"
LABEL = "com.docker.compose.project"


class Failed(Exception):
    """A check that did not hold; the message says which."""


def log(message):
    print(f"compose-check: {message}", flush=True)


def wait_for(what, predicate, timeout, every=0.5):
    """Polls `predicate` until it returns something truthy; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Engine:
    """The container engine and its compose front end, for one project."""

    def __init__(self, kind, project, env, profiles=()):
        self.kind = kind  # "docker" or "podman"
        self.project = project
        self.env = env
        if kind == "podman":
            self.compose_cmd = ["podman-compose", "-p", project]
        elif subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
            self.compose_cmd = ["docker", "compose", "-p", project]
        else:
            self.compose_cmd = ["docker-compose", "-p", project]
        for profile in profiles:
            self.compose_cmd += ["--profile", profile]

    def run(self, *args, check=True, quiet=False):
        result = subprocess.run(list(args), cwd=ROOT, env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise Failed(f"`{' '.join(args)}` failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        if not quiet and result.returncode != 0:
            log(f"`{' '.join(args)}` exited {result.returncode}: {result.stderr.strip()[-500:]}")
        return result

    def compose(self, *args, check=True):
        return self.run(*self.compose_cmd, *args, check=check)

    def cli(self, *args, check=True):
        return self.run(self.kind, *args, check=check, quiet=not check)

    def containers(self, service=None):
        """Inspected containers of the project (of one service), running or not."""
        filters = ["--filter", f"label={LABEL}={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = self.cli("ps", "-aq", *filters).stdout.split()
        if not ids:
            return []
        return json.loads(self.cli("inspect", *ids).stdout)

    def volumes(self):
        names = self.cli("volume", "ls", "--format", "{{.Name}}").stdout.split()
        return [v for v in names if v.startswith(self.project)]

    def exec(self, container, *args):
        return self.cli("exec", container["Id"], *args, check=False)


def service(container):
    return container["Config"]["Labels"].get("com.docker.compose.service")


def health(container):
    state = container["State"]
    return (state.get("Health") or state.get("Healthcheck") or {}).get("Status", "")


def address(container):
    networks = container["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))


class HealthPump(threading.Thread):
    """Runs every health check every 2 s, as Docker (or podman's systemd timers) would."""

    def __init__(self, engine):
        super().__init__(daemon=True)
        self.engine = engine
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(2):
            try:
                for c in self.engine.containers():
                    if c["State"]["Running"] and c["Config"].get("Healthcheck"):
                        self.engine.cli("healthcheck", "run", c["Id"], check=False)
            except Exception as error:  # keep pumping; the waits report what is wrong
                log(f"health pump: {error}")


class Http:
    """Plain HTTP to nginx's published address."""

    def __init__(self, base):
        self.base = base

    def request(self, method, path, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, str(error)

    def request_bytes(self, method, path, data, token=None):
        """Like `request`, with a raw body and a raw answer."""
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError as error:
            return 0, str(error).encode()

    def login(self, name):
        status, body = self.request("POST", "/api/login", {"name": name})
        if status != 200:
            raise Failed(f"POST /api/login answered {status}: {body}")
        return json.loads(body)["token"]


class Client:
    """One WebSocket client through nginx; `node` is the gateway it landed on."""

    def __init__(self, ws_url, token):
        self.ws = connect(f"{ws_url}?token={token}", open_timeout=10, close_timeout=2)
        welcome = self.next("welcome")
        self.node = welcome["node"]
        self.conn = welcome["conn"]
        self.user = (welcome.get("user") or {}).get("id")

    def send(self, **command):
        self.ws.send(json.dumps(command))

    def next(self, kind, timeout=10, errors=False, **match):
        """The next event of type `kind` (with the given fields), skipping others;
        with `errors`, an error with the same `ref` is returned instead of failing."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"no `{kind}` {match} within {timeout} s")
            try:
                event = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                continue
            if event.get("type") == "error":
                if errors and event.get("ref") == match.get("ref"):
                    return event
                raise Failed(f"error event: {event}")
            if event.get("type") == kind and all(event.get(k) == v for k, v in match.items()):
                return event

    def close(self):
        self.ws.close()


class Receiver(threading.Thread):
    """A room member that resumes after every close and records each seq it sees."""

    def __init__(self, ws_url, token, room):
        super().__init__(daemon=True)
        self.ws_url, self.token, self.room = ws_url, token, room
        self.seqs, self.closes, self.nodes = [], [], []
        self.epoch = None
        self.recovered = []
        self.error = None
        self.stopped = threading.Event()
        self.ready = threading.Event()

    def run(self):
        try:
            while not self.stopped.is_set():
                self.session()
        except Exception as error:
            self.error = error
            self.ready.set()

    def session(self):
        client = self.reconnect()
        self.nodes.append(client.node)
        join = {"type": "join", "room": self.room, "history": 0, "ref": "j"}
        if self.epoch is not None:
            join.update(epoch=self.epoch, after=self.seqs[-1] if self.seqs else 0)
        client.send(**join)
        try:
            joined = client.next("joined", ref="j")
            self.epoch = joined["epoch"]
            if "recovered" in joined:
                self.recovered.append(joined["recovered"])
            self.ready.set()
            while not self.stopped.is_set():
                try:
                    event = json.loads(client.ws.recv(timeout=0.5))
                except TimeoutError:
                    continue
                if event.get("type") == "message" and event.get("room") == self.room:
                    self.seqs.append(event["seq"])
            client.close()
        except ConnectionClosed as closed:
            self.closes.append(closed.rcvd.code if closed.rcvd else None)


    def reconnect(self):
        """A new connection through nginx; refusals (a draining node's 503) are retried for 20 s."""
        deadline = time.monotonic() + 20
        while True:
            try:
                return Client(self.ws_url, self.token)
            except (OSError, InvalidHandshake) as error:
                if time.monotonic() > deadline:
                    raise Failed(f"no connection through nginx for 20 s: {error}") from None
                time.sleep(0.2)


class Check:
    def __init__(self, engine, port):
        self.engine = engine
        self.http = Http(f"http://127.0.0.1:{port}")
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        self.users = {}
        self.room = f"compose-{uuid.uuid4().hex[:8]}"

    def token(self, name):
        if name not in self.users:
            self.users[name] = self.http.login(name)
        return self.users[name]

    def nginx(self):
        return self.engine.containers("nginx")[0]

    def in_network(self, url):
        """GET `url` from inside the project's network (nginx's container has curl)."""
        result = self.engine.exec(self.nginx(), "curl", "-sS", "--max-time", "5", url)
        return result.stdout if result.returncode == 0 else None

    def wait_healthy(self, gateways, timeout=180):
        def healthy():
            containers = self.engine.containers()
            states = {c["Name"]: (c["State"]["Status"], health(c)) for c in containers}
            gateway = [c for c in containers if service(c) == "gateway"]
            ok = (
                len(gateway) == gateways
                and all(c["State"]["Running"] for c in containers)
                and all(health(c) == "healthy" for c in containers if c["Config"].get("Healthcheck"))
            )
            healthy.last = states
            return ok and containers

        healthy.last = {}
        try:
            return wait_for(f"{gateways} healthy gateways and every service up", healthy, timeout, every=1)
        except Failed as failed:
            raise Failed(f"{failed}; states: {healthy.last}") from None

    def replicas_ready(self, gateways):
        containers = [c for c in self.engine.containers("gateway") if c["State"]["Running"]]
        if len(containers) != gateways:
            raise Failed(f"{len(containers)} gateways running, expected {gateways}")
        ids = {}
        for c in containers:
            ip = address(c)
            ready = wait_for(f"/readyz of {c['Name']}", lambda: self.in_network(f"http://{ip}:9091/readyz"), 30)
            if ready.strip() != "ready":
                raise Failed(f"/readyz of {c['Name']} answered {ready!r}")
            cluster = json.loads(self.in_network(f"http://{ip}:9091/api/cluster"))
            ids[cluster["node"]] = c
        for c in containers:
            ip = address(c)

            def sees_all():
                view = json.loads(self.in_network(f"http://{ip}:9091/api/cluster") or "{}")
                return {n["id"] for n in view.get("nodes", [])} >= set(ids)

            wait_for(f"{c['Name']}'s cluster view listing every replica", sees_all, 30)
        log(f"{gateways} gateways ready, each sees all: {sorted(ids)}")
        return ids

    def scraped(self, gateways):
        want = {f"{address(c)}:9091" for c in self.engine.containers("gateway") if c["State"]["Running"]}

        def up():
            body = self.in_network("http://prometheus:9090/api/v1/targets")
            if not body:
                return None
            targets = json.loads(body)["data"]["activeTargets"]
            return {t["labels"]["instance"] for t in targets if t["health"] == "up"} >= want

        wait_for(f"Prometheus scraping all {gateways} gateways {sorted(want)}", up, 90, every=2)
        log(f"Prometheus scrapes every gateway: {sorted(want)}")

    def on_distinct_nodes(self, count, name, timeout=60):
        """Opens connections through nginx until they reach `count` distinct gateways."""
        clients, nodes = [], {}

        def more():
            # A user per connection: one user may hold only a few per node.
            client = Client(self.ws_url, self.token(f"{name}{len(clients)}"))
            clients.append(client)
            nodes.setdefault(client.node, client)
            return len(nodes) >= count

        try:
            wait_for(f"connections through nginx reaching {count} gateways", more, timeout, every=0.2)
        except Failed as failed:
            raise Failed(f"{failed}; reached {sorted(nodes)}") from None
        for client in clients:
            if client not in nodes.values():
                client.close()
        return list(nodes.values())

    def pages(self):
        """nginx serves the browser client and Grafana (or its stand-in) under /grafana/."""
        for path in ("/", "/grafana/"):
            status, body = wait_for(f"GET {path} through nginx", lambda: ok(self.http.request("GET", path)), 60, every=1)
            log(f"GET {path} through nginx: {status} ({len(body)} bytes)")

    def chat(self):
        ada = Client(self.ws_url, self.token("Ada"))
        bob_token = self.token("Bob")
        bob = wait_for("Bob on a gateway other than Ada's", lambda: self.other_than(ada.node, bob_token), 30)
        for client in (ada, bob):
            client.send(type="join", room=self.room, history=0, ref="j")
            client.next("joined", ref="j")
        ada.send(type="send", room=self.room, body="hello from ada", client_msg_id="a-1", ref="s")
        ada.next("sent", ref="s")
        bob.next("message", body="hello from ada")
        bob.send(type="send", room=self.room, body="hello from bob", client_msg_id="b-1", ref="s")
        bob.next("sent", ref="s")
        ada.next("message", body="hello from bob")
        log(f"Ada ({ada.node}) and Bob ({bob.node}) chat through nginx")
        ada.send(type="history", room=self.room, limit=10, ref="h")
        page = ada.next("history", ref="h")
        bodies = [m["body"] for m in page["messages"]]
        status, body = self.http.request("GET", f"/api/rooms/{self.room}/messages?limit=10", token=bob_token)
        over_http = [m["body"] for m in json.loads(body)["messages"]] if status == 200 else body
        want = ["hello from ada", "hello from bob"]
        if bodies != want or over_http != want:
            raise Failed(f"history: command {bodies}, HTTP {status} {over_http}; expected {want}")
        log("history (command and HTTP) has both lines in order")
        ada.close()
        bob.close()

    def archive(self, key):
        """The archive (the postgres service): a message sent through nginx
        is found by search, through nginx, with the user's token and with
        the run's key (scope history), once the gateways have archived it."""
        token = self.token("Archivist")
        client = Client(self.ws_url, token)
        room = f"archive-{uuid.uuid4().hex[:8]}"
        word = f"zebra{uuid.uuid4().hex[:8]}"
        client.send(type="join", room=room, history=0, ref="j")
        client.next("joined", ref="j")
        client.send(type="send", room=room, body=f"the {word} crossed", ref="s")
        sent = client.next("sent", ref="s")
        client.close()

        def found(credential):
            status, body = self.http.request("GET", f"/api/v1/search?q={word}", token=credential)
            if status != 200:
                found.last = f"{status}: {body}"
                return None
            hits = json.loads(body)["hits"]
            return hits if [h["message"]["id"] for h in hits] == [sent["id"]] else None

        found.last = ""
        step = time.monotonic()
        try:
            wait_for("the message found by search", lambda: found(token), 90, every=1)
        except Failed as failed:
            raise Failed(f"{failed}; last answer {found.last}") from None
        if not found(key):
            raise Failed(f"the server API key's search did not find it: {found.last}")
        log(f"archive: a message sent through nginx was found by search in {time.monotonic() - step:.1f} s")

    def server_api(self, key):
        """The server API through nginx with the key the run configured
        (CHORUS_API_KEYS): a bot's post reaches one user's connections on two
        gateways, and the user listing, asked of every gateway, finds both."""
        ada_token = self.token("Ada")
        phone = Client(self.ws_url, ada_token)
        laptop = wait_for("Ada's second connection on another gateway",
                          lambda: self.other_than(phone.node, ada_token), 30)
        room = f"api-{uuid.uuid4().hex[:8]}"
        for client in (phone, laptop):
            client.send(type="join", room=room, history=0, ref="j")
            client.next("joined", ref="j")
        post = {"from": {"id": "bot:compose", "kind": "bot"}, "body": "from the backend", "client_msg_id": "api-1"}
        status, body = self.http.request("POST", f"/api/v1/rooms/{room}/messages", post, token=key)
        if status != 201:
            raise Failed(f"POST /api/v1/rooms/{room}/messages answered {status}: {body}")
        for client in (phone, laptop):
            message = client.next("message", body="from the backend")
            if message["from"].get("kind") != "bot":
                raise Failed(f"the API's post is not marked as a bot's: {message}")
        status, body = self.http.request("GET", f"/api/v1/rooms/{room}/messages", token="not-a-key")
        if status != 401:
            raise Failed(f"a wrong key got {status}: {body}")
        status, body = self.http.request("GET", f"/api/v1/users/{phone.user}", token=key)
        if status != 200:
            raise Failed(f"GET /api/v1/users/{phone.user} answered {status}: {body}")
        listing = json.loads(body)
        found = sorted((c["node"], c["id"]) for c in listing["connections"])
        want = sorted([(phone.node, phone.conn), (laptop.node, laptop.conn)])
        if found != want or listing["nodes_missing"] or listing["rooms"] != [room]:
            raise Failed(f"GET /api/v1/users/{phone.user}: {listing}; expected {want} in {room}")
        log(f"server API through nginx: a bot's post reached {phone.node} and {laptop.node}; "
            "the user listing, asked of every gateway, found both connections")
        # A file (over nginx's limit for other routes) into the shared volume
        # through one gateway, attached, and served by every gateway.
        data = bytes(i % 251 for i in range(300 * 1024))
        status, body = self.http.request_bytes("POST", f"/api/v1/rooms/{room}/files?name=data.bin", data, token=ada_token)
        if status != 201:
            raise Failed(f"upload through nginx answered {status}: {body}")
        file_id = json.loads(body)["id"]
        phone.send(type="send", room=room, body="a file", attachments=[file_id], ref="f")
        phone.next("sent", ref="f")
        attached = laptop.next("message", body="a file")["attachments"]
        if [a["id"] for a in attached] != [file_id]:
            raise Failed(f"the message's attachments: {attached}")
        for _ in range(4):
            status, served = self.http.request_bytes("GET", f"/api/v1/files/{file_id}", None, token=ada_token)
            if status != 200 or served != data:
                raise Failed(f"download through nginx: {status}, {len(served)} bytes")
        log("a 300 KiB file went up through nginx, was attached, and came back from the gateways")
        phone.close()
        laptop.close()

    def sharded(self):
        """Two members on two gateways: their room's channel is a shard channel
        of the Redis Cluster, held by both gateways on one shard, and no
        ordinary channel carries it."""
        ada = Client(self.ws_url, self.token("Ada"))
        bob_token = self.token("Bob")
        bob = wait_for("Bob on a gateway other than Ada's", lambda: self.other_than(ada.node, bob_token), 30)
        room = f"sharded-{uuid.uuid4().hex[:8]}"
        for client in (ada, bob):
            client.send(type="join", room=room, history=0, ref="j")
            client.next("joined", ref="j")
        ada.send(type="send", room=room, body="across the shards", client_msg_id="c-1", ref="s")
        ada.next("sent", ref="s")
        bob.next("message", body="across the shards")
        cluster = self.engine.containers("redis-cluster")[0]
        channel = f"chorus:room:{{{room}}}"
        counts = {}
        for port in range(7000, 7006):
            for kind in ("SHARDNUMSUB", "NUMSUB"):
                reply = self.engine.exec(cluster, "redis-cli", "-p", str(port), "PUBSUB", kind, channel).stdout.split()
                counts[(port, kind)] = int(reply[1]) if len(reply) == 2 else None
        shard = [port for port in range(7000, 7006) if counts[(port, "SHARDNUMSUB")]]
        ordinary = [port for port in range(7000, 7006) if counts[(port, "NUMSUB")]]
        if len(shard) != 1 or counts[(shard[0], "SHARDNUMSUB")] != 2 or ordinary:
            raise Failed(f"{channel}: expected one shard holding it for 2 gateways, got {counts}")
        log(f"Ada ({ada.node}) and Bob ({bob.node}) chat through the Redis Cluster: "
            f"{channel} is a shard channel on port {shard[0]} only")
        ada.close()
        bob.close()

    def other_than(self, node, token):
        client = Client(self.ws_url, token)
        if client.node != node:
            return client
        client.close()
        return None

    def drain(self, nodes):
        """Stops the gateway of some receivers while a stream is sent from another one."""
        room = f"{self.room}-drain"
        receivers = [Receiver(self.ws_url, self.token(f"R{i}"), room) for i in range(8)]
        for r in receivers:
            r.start()
        for r in receivers:
            if not r.ready.wait(20) or r.error:
                raise Failed(f"a receiver did not join: {r.error}")
        sender = Client(self.ws_url, self.token("Sender"))
        victims = {r.nodes[0] for r in receivers} - {sender.node}
        if not victims:
            raise Failed("every receiver landed on the sender's gateway")
        victim = sorted(victims)[0]
        on_victim = [r for r in receivers if r.nodes[0] == victim]
        sender.send(type="join", room=room, history=0, ref="j")
        sender.next("joined", ref="j")
        sent = []

        def send(n):
            # Within the sender's rate (10/s); a refusal says when to retry the same send.
            while True:
                sender.send(type="send", room=room, body=f"m{n}", client_msg_id=f"d-{n}", ref=f"s{n}")
                reply = sender.next("sent", errors=True, ref=f"s{n}")
                if reply["type"] == "sent":
                    sent.append(reply["seq"])
                    return
                if reply["code"] != "rate_limited":
                    raise Failed(f"send refused: {reply}")
                time.sleep(reply["retry_after_ms"] / 1000)

        stopping = threading.Thread(
            target=lambda: self.engine.cli("stop", "-t", "30", nodes[victim]["Id"]), daemon=True
        )
        started = time.monotonic()
        n = 0
        while n < 10:
            send(n)
            n += 1
        stopping.start()
        while stopping.is_alive() or n < 40:
            send(n)
            n += 1
            time.sleep(0.1)
        log(f"stopped {nodes[victim]['Name']} ({victim}) in {time.monotonic() - started:.1f} s while sending {n}")
        wait_for(
            "every receiver to hold every message",
            lambda: all(len(r.seqs) >= len(sent) or r.error for r in receivers),
            30,
        )
        for r in receivers:
            r.stopped.set()
        for r in receivers:
            r.join(5)
        sender.close()
        for r in receivers:
            if r.error:
                raise Failed(f"a receiver failed: {r.error}")
            if r.seqs != sent:
                raise Failed(f"a receiver on {r.nodes} got {len(r.seqs)} of {len(sent)} (first differing seqs: {first_difference(r.seqs, sent)})")
        for r in on_victim:
            if r.closes[:1] != [4000] or r.recovered[:1] != [True] or victim in r.nodes[1:]:
                raise Failed(f"a client of the drained gateway: closes {r.closes}, recovered {r.recovered}, nodes {r.nodes}")
        log(
            f"{len(on_victim)} clients of {victim} got 4000 and resumed on {sorted({r.nodes[1] for r in on_victim})}; "
            f"all {len(receivers)} receivers got all {len(sent)} messages once, in order"
        )

    def gone(self):
        project = self.engine.project
        left = [c["Name"] for c in self.engine.containers()]
        networks = [n for n in self.engine.cli("network", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(project)]
        volumes = self.engine.volumes()
        pods = []
        if self.engine.kind == "podman":
            pods = [p for p in self.engine.cli("pod", "ls", "--format", "{{.Name}}").stdout.split() if project in p]
        if left or networks or volumes or pods:
            raise Failed(f"after down: containers {left}, networks {networks}, volumes {volumes}, pods {pods}")
        log("down left no container, pod, network or volume")


def ok(reply):
    status, _ = reply
    return reply if status == 200 else None


def first_difference(got, want):
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return got[max(0, i - 2) : i + 3], want[max(0, i - 2) : i + 3]
    return got[len(want) :], want[len(got) :]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose_engine(requested):
    if requested != "auto":
        return requested
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    return "podman"


def prepare_podman(env):
    """Podman, podman-compose and the stand-in images, installed or built when missing."""
    env["CONTAINERS_CONF"] = env.get("CONTAINERS_CONF", str(STANDINS / "containers.conf"))
    if not shutil.which("podman-compose"):
        log("installing podman-compose from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "podman-compose"], check=True)
    started = time.monotonic()
    subprocess.run(["bash", str(STANDINS / "build.sh")], check=True, env=env)
    log(f"stand-in images ready in {time.monotonic() - started:.0f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["auto", "docker", "podman"], default=os.environ.get("CHORUS_ENGINE", "auto"))
    parser.add_argument("--keep", action="store_true", help="leave the project running (no down)")
    parser.add_argument("--redis-cluster", action="store_true",
                        help="the profile redis-cluster: gateways on a Redis Cluster")
    args = parser.parse_args()

    kind = choose_engine(args.engine)
    env = dict(os.environ)
    port = free_port()
    env["CHORUS_PUBLISH"] = f"127.0.0.1:{port}"
    # The containers' open-file limit stays below this machine's hard limit.
    env.setdefault("CHORUS_NOFILE", str(min(16384, hard_nofile())))
    if kind == "podman":
        prepare_podman(env)
    # Unique per run: podman's DNS (aardvark-dns) can keep a network's
    # records after `down`, and a later project of the same name (the same
    # pid after a reboot) then resolves names to containers that are gone.
    project = f"chorus-check-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    profiles = ()
    if args.redis_cluster:
        env.update(read_env_file(ROOT / "deploy" / "redis-cluster" / "compose.env"))
        profiles = ("redis-cluster",)
    # A server API key for this run only, in a keys file the gateways mount.
    keys_dir = tempfile.TemporaryDirectory(prefix="chorus-compose-keys-")
    api_key = "chorus_" + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    keys_file = Path(keys_dir.name) / "api-keys.toml"
    keys_file.write_text(
        '[[keys]]\nname = "compose-check"\n'
        f'sha256 = "{hashlib.sha256(api_key.encode()).hexdigest()}"\n'
        'scopes = ["publish", "presence", "history"]\n'
    )
    keys_file.chmod(0o644)
    Path(keys_dir.name).chmod(0o755)
    env["CHORUS_API_KEYS"] = str(keys_file)
    engine = Engine(kind, project, env, profiles)
    check = Check(engine, port)
    pump = HealthPump(engine) if kind == "podman" else None
    begun = time.monotonic()
    failed = None
    # A check stopped from outside (CI's time limit, a closed terminal) still
    # takes its containers down: the signal becomes SystemExit, which runs `finally`.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda received, _frame: sys.exit(128 + received))
    try:
        step = time.monotonic()
        engine.compose("build", "gateway")
        log(f"gateway image built from deploy/Dockerfile in {time.monotonic() - step:.0f} s ({kind})")
        step = time.monotonic()
        engine.compose("up", "-d")
        if pump:
            pump.start()
        check.wait_healthy(3)
        log(f"up and healthy in {time.monotonic() - step:.0f} s; nginx on 127.0.0.1:{port}")
        check.chat()
        check.server_api(api_key)
        check.archive(api_key)
        if args.redis_cluster:
            check.sharded()
        else:
            check.pages()
            nodes = check.replicas_ready(3)
            check.scraped(3)
            engine.compose("up", "-d", "--scale", "gateway=5")
            check.wait_healthy(5)
            nodes = check.replicas_ready(5)
            check.scraped(5)
            for client in check.on_distinct_nodes(5, "Scaled"):
                client.close()
            log("after --scale gateway=5, connections through nginx reach all 5")
            check.drain(nodes)
    except Exception as error:  # a failed check, or a client or engine error on the way
        failed = error
    finally:
        if pump:
            pump.stopped.set()
        if failed:
            log(f"FAILED: {failed!r}")
            print(engine.compose("logs", "--tail", "40", check=False).stdout[-20000:], flush=True)
        if not args.keep:
            engine.compose("down", "-v", "--remove-orphans", "-t", "30", check=False)
            if kind == "podman" and (engine.containers() or engine.volumes()):
                # podman-compose's down knows only the replicas the file declares:
                # those added by --scale go in its orphan pass, and until then they
                # keep Redis's container (a dependency) and so its volume. Once more.
                log("podman-compose's down left the scaled replicas' dependencies; down again")
                engine.compose("down", "-v", "--remove-orphans", "-t", "30", check=False)
            try:
                check.gone()
            except Failed as error:
                failed = failed or error
                log(f"FAILED: {error}")
    keys_dir.cleanup()
    if failed:
        sys.exit(1)
    log(f"all checks passed in {time.monotonic() - begun:.0f} s")


def read_env_file(path):
    """KEY=VALUE lines of a compose env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def hard_nofile():
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Builds local stand-ins, under the exact names deploy/Dockerfile and
# docker-compose.yml use, for the images a machine without a registry cannot
# pull: a Debian root made with debootstrap, imported once, and on it one
# small image per name (deploy/standins/*.Containerfile) with Debian's
# packages (the Rust toolchain is this machine's own). An image is rebuilt
# only when its recipe changed (a label on the image records the recipe's hash).
#
#   deploy/standins/build.sh          # needs podman, runc and debootstrap (installed when missing, as root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

# The engine, its runtime, the network stack compose networks need (netavark
# sets up bridges with iptables; aardvark-dns answers service names) and debootstrap.
need=()
for tool in podman runc debootstrap iptables /usr/lib/podman/netavark /usr/lib/podman/aardvark-dns; do
  command -v "$tool" >/dev/null || need+=("$(basename "$tool")")
done
if ((${#need[@]})); then
  echo "standins: installing ${need[*]} from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A Debian root of `suite`, imported as localhost/chorus-standin/debian:<suite>.
base_image() {
  local suite=$1 image=localhost/chorus-standin/debian:$1 work
  podman image exists "$image" && return
  work=$(mktemp -d)
  echo "standins: debootstrap of Debian $suite (minbase)" >&2
  # This debootstrap may not know newer suites by name; they bootstrap like sid.
  local script=/usr/share/debootstrap/scripts/$suite
  [[ -e $script ]] || script=/usr/share/debootstrap/scripts/sid
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$work/root" http://deb.debian.org/debian "$script" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; rm -rf "$work"; exit 1; }
  # The machine's own certificate authorities (a TLS-inspecting egress proxy
  # has one), so that apt, cargo and curl in the images trust what the host trusts.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/root/usr/local/share/ca-certificates/"
    chroot "$work/root" update-ca-certificates >/dev/null 2>&1
  fi
  # A mirror of a release in development may be past its Valid-Until date.
  echo 'Acquire::Check-Valid-Until "false";' >"$work/root/etc/apt/apt.conf.d/99standin"
  tar -C "$work/root" -c . | podman import --quiet - "$image" >/dev/null
  rm -rf "$work"
}
base_image bookworm
base_image forky

# The name each recipe stands in for, read from the files that use it.
from_compose() { awk -v want="$1" '$1 == "image:" && index($2, want) == 1 {print $2; exit}' "$root/docker-compose.yml"; }
from_dockerfile() { awk -v want="$1" '$1 == "FROM" && index($2, want) == 1 {print $2; exit}' "$root/deploy/Dockerfile"; }
qualified() { # docker.io is where a short name points
  case "$1" in
    */*/*) echo "$1" ;;
    */*) case "${1%%/*}" in *.*) echo "$1" ;; *) echo "docker.io/$1" ;; esac ;;
    *) echo "docker.io/library/$1" ;;
  esac
}

build() { # recipe name [context]
  local recipe=$here/$1.Containerfile name context=${3:-$here} hash
  name=$(qualified "$2")
  hash=$( {
    cat "$recipe" "$here"/*-entrypoint.sh "$here"/nginx-entrypoint.d/*
    podman image inspect --format '{{.Id}}' "localhost/chorus-standin/debian:$(awk '$1 == "FROM" {print $2}' "$recipe" | cut -d: -f2)"
    if [[ $1 == rust ]]; then rustc --version; fi
  } | sha256sum | cut -c1-16)
  if [[ $(podman image inspect --format '{{index .Labels "standin.recipe"}}' "$name" 2>/dev/null) == "$hash" ]]; then
    echo "standins: $name is current" >&2
    return
  fi
  echo "standins: building $name from $1.Containerfile" >&2
  podman build --quiet --label "standin.recipe=$hash" -f "$recipe" -t "$name" "$context" >/dev/null
}

toolchain=$(rustc --print sysroot)
build rust "$(from_dockerfile rust:)" "$toolchain"
build distroless "$(from_dockerfile gcr.io/distroless/)"
build redis "$(from_compose redis:)"
build postgres "$(from_compose postgres:)"
build nginx "$(from_compose nginx:)"
build prometheus "$(from_compose prom/prometheus:)"
build grafana "$(from_compose grafana/grafana:)"

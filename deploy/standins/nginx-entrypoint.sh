#!/bin/sh
# What the official nginx image's entry point does that the compose file uses
# (docker-entrypoint.d/15-local-resolvers.envsh and 20-envsubst-on-templates.sh).
set -eu
if [ -n "${NGINX_ENTRYPOINT_LOCAL_RESOLVERS:-}" ]; then
  NGINX_LOCAL_RESOLVERS=$(awk 'BEGIN{ORS=" "} $1=="nameserver" {if ($2 ~ ":") print "[" $2 "]"; else print $2}' /etc/resolv.conf)
  export NGINX_LOCAL_RESOLVERS="${NGINX_LOCAL_RESOLVERS% }"
fi
templates=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
output=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
if [ -d "$templates" ]; then
  defined=$(printf '${%s} ' $(awk 'END { for (name in ENVIRON) print name }' </dev/null))
  for template in "$templates"/*"$suffix"; do
    [ -f "$template" ] || continue
    name=$(basename "$template" "$suffix")
    envsubst "$defined" <"$template" >"$output/$name"
  done
fi
exec "$@"

#!/bin/sh
# As the official image's: /etc/nginx/templates/*.template through envsubst
# (only variables that are defined) into NGINX_ENVSUBST_OUTPUT_DIR.
set -eu
templates=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
output=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
[ -d "$templates" ] || exit 0
defined=$(printf '${%s} ' $(awk 'END { for (name in ENVIRON) print name }' </dev/null))
for template in "$templates"/*"$suffix"; do
  [ -f "$template" ] || continue
  name=$(basename "$template" "$suffix")
  envsubst "$defined" <"$template" >"$output/$name"
done

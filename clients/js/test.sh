#!/usr/bin/env sh
# The SDK's checks, run by the README's test command (.ci/test): the types
# against docs/protocol.md, the types and the example through TypeScript's
# compiler (from npm, installed here when missing, not committed), and the
# tests against real chorus nodes, Redis and nginx (chorus-cluster, built
# by cargo: CHORUS_CLUSTER_BIN or target/debug/chorus-cluster).
set -eu
cd "$(dirname "$0")"
TYPESCRIPT_VERSION=5.7.3
node scripts/check-protocol.js
if [ "$(node -p "try { require('./node_modules/typescript/package.json').version } catch { '' }")" != "$TYPESCRIPT_VERSION" ]; then
  echo "sdk: installing typescript $TYPESCRIPT_VERSION from npm"
  npm install --no-save --no-package-lock --no-audit --no-fund --silent "typescript@$TYPESCRIPT_VERSION"
fi
node node_modules/typescript/bin/tsc -p tsconfig.json
echo "sdk: types and example compile"
# Node 20's WebSocket is behind a flag (on by default from Node 22).
flag=""
[ "$(node -p 'typeof WebSocket')" = function ] || flag=--experimental-websocket
node $flag --test --test-concurrency=1 --test-timeout=120000 test/*.test.js

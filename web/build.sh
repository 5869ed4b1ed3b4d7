#!/usr/bin/env bash
# Builds the agent panel: TypeScript from the protos (buf + protoc-gen-es, into gen/), a type
# check (tsc), and one bundle (esbuild) with the page and its stylesheet into dist/, which the
# server embeds at compile time (server/src/web.rs). Needs Node.js 20 or later; installs the
# pinned npm packages (package-lock.json) on first run.
#
#   bash web/build.sh           # regenerate gen/ and dist/ (commit both)
#   bash web/build.sh --check   # build into a scratch folder; fail when gen/ or dist/ differ
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/esbuild ] || [ ! -x node_modules/.bin/buf ]; then
  npm ci --silent --no-audit --no-fund >/dev/null
fi
bin=node_modules/.bin
out=.
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
"$bin/buf" generate --output "$out"
"$bin/tsc" -p .
mkdir -p "$out/dist"
# Bundle from the committed gen/ (the check compares it with the fresh one first).
"$bin/esbuild" src/main.ts --bundle --format=esm --target=es2022 --minify --legal-comments=none \
  --charset=utf8 --log-level=warning --outfile="$out/dist/app.js"
cp src/index.html src/app.css "$out/dist/"
if [ "$out" != . ]; then
  status=0
  diff -r gen "$out/gen" >/dev/null || { echo "web/gen differs from the protos: run bash web/build.sh and commit" >&2; diff -r gen "$out/gen" | head -20 >&2; status=1; }
  diff -r dist "$out/dist" >/dev/null || { echo "web/dist differs from web/src: run bash web/build.sh and commit" >&2; diff -rq dist "$out/dist" >&2; status=1; }
  [ $status = 0 ] && echo "web/gen and web/dist match their sources"
  exit $status
fi
echo "built web/dist: $(wc -c < dist/app.js) bytes of JavaScript"

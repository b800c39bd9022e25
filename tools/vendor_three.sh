#!/usr/bin/env bash
# Rebuild server/static/vendor/three-bundle.min.js (three.js + OrbitControls as one minified ES module).
# Run by hand when upgrading three.js; the served page needs no build step and no CDN.
set -euo pipefail
THREE_VERSION=${THREE_VERSION:-0.187.0}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --silent "three@${THREE_VERSION}" esbuild@0.25
cat > entry.js <<'JS'
export * from "three";
export { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
JS
npx esbuild entry.js --bundle --format=esm --minify --outfile="$repo/server/static/vendor/three-bundle.min.js"
cp node_modules/three/LICENSE "$repo/server/static/vendor/three-LICENSE.txt"
echo "three.js ${THREE_VERSION} vendored"

#!/bin/sh
# Builds the root filesystem of the Gatehouse container image into OUTDIR:
#
#   OUTDIR/usr/local/bin/gatehouse      static binary (CGO_ENABLED=0)
#   OUTDIR/etc/gatehouse/config.yaml    config.yaml, listening on :8080 with
#                                       its SQLite database under /data
#   OUTDIR/etc/ssl/certs/...            CA certificates, when the build host has them
#   OUTDIR/data, OUTDIR/tmp             the volume and a scratch directory
#
# The Dockerfile runs this script in its build stage and copies OUTDIR onto
# an empty image, so running it without Docker checks the same steps.
#
# Usage: scripts/build-image.sh OUTDIR      (VERSION=1.2.3 sets the version)
set -eu

out=${1:?usage: scripts/build-image.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}

fail() {
	echo "build-image: $*" >&2
	exit 1
}
# OUTDIR's usr/, etc/, data/ and tmp/ are replaced: never the host's own.
[ "$out" != "/" ] || fail "OUTDIR must not be /"

rm -rf "$out/usr" "$out/etc" "$out/data" "$out/tmp"
mkdir -p "$out/usr/local/bin" "$out/etc/gatehouse" "$out/data" "$out/tmp"

echo "build-image: compiling gatehouse $version"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" \
	-o "$out/usr/local/bin/gatehouse" ./cmd/gatehouse)

# The shipped config, changed only where a container differs from one
# machine: listen on every interface, keep the database on the volume.
conf="$out/etc/gatehouse/config.yaml"
sed -e 's|^\(  listen: \)"127\.0\.0\.1:8080"|\1":8080"         |' \
	-e 's|^\(  dsn: \)"data/gatehouse\.db"|\1"/data/gatehouse.db"|' \
	"$root/config.yaml" >"$conf"
grep -q '^  listen: ":8080"' "$conf" || fail "config.yaml: server.listen line not found; update this script"
grep -q '^  dsn: "/data/gatehouse.db"' "$conf" || fail "config.yaml: database.dsn line not found; update this script"
"$out/usr/local/bin/gatehouse" check-config --config "$conf" >/dev/null ||
	fail "the image's config.yaml does not validate"

if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
	mkdir -p "$out/etc/ssl/certs"
	cp /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/"
fi

chmod 0755 "$out/usr/local/bin/gatehouse"
chmod 1777 "$out/tmp"
chmod 0700 "$out/data"
echo "build-image: root filesystem ready in $out"

#!/usr/bin/env bash
# Build the Prometheus server pinned in this module into OUTDIR/prometheus.
#
#   hack/prometheus/build.sh OUTDIR
#
# The build is skipped when OUTDIR/prometheus and the version stamp OUTDIR/.prometheus-VERSION
# both exist. A cold build (empty module and build caches) takes several minutes on 2 cores.
set -euo pipefail

VERSION="v0.316.0"
PKG="github.com/prometheus/prometheus/cmd/prometheus"

if [[ $# -ne 1 || -z "$1" ]]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi

mkdir -p "$1"
outdir="$(cd "$1" && pwd)"
stamp="${outdir}/.prometheus-${VERSION}"
binary="${outdir}/prometheus"

if [[ -x "${binary}" && -f "${stamp}" ]]; then
	echo "Prometheus ${VERSION} is up to date in ${outdir}"
	exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
echo "Building Prometheus ${VERSION} from Go modules into ${outdir} (several minutes when cold)"
rm -f "${outdir}"/.prometheus-*
(
	cd "${here}"
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${binary}" "${PKG}"
)
touch "${stamp}"
echo "Built ${binary}"

#!/usr/bin/env bash
# Build the rest of a full local cluster, on top of the etcd and kube-apiserver that
# `make envtest-bin` builds: kube-controller-manager, kube-scheduler, kubectl and kwok, all pinned
# in the hack/k8s module, into OUTDIR.
#
#   hack/cluster-bin.sh OUTDIR
#
# A binary is skipped when it exists in OUTDIR alongside the version stamp OUTDIR/.cluster-VERSION;
# without the stamp every binary is rebuilt. A cold build (empty module and build caches) takes
# several minutes on 2 cores.
set -euo pipefail

K8S_VERSION="v1.37.2"
K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
K8S_CMDS=(kube-controller-manager kube-scheduler kubectl)

if [[ $# -ne 1 || -z "$1" ]]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi

mkdir -p "$1"
outdir="$(cd "$1" && pwd)"
stamp="${outdir}/.cluster-${K8S_VERSION}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# up_to_date NAME: the binary exists and was built for this version.
up_to_date() {
	[[ -f "${stamp}" && -x "${outdir}/$1" ]]
}

k8s_pkgs=()
for cmd in "${K8S_CMDS[@]}"; do
	if ! up_to_date "${cmd}"; then
		k8s_pkgs+=("k8s.io/kubernetes/cmd/${cmd}")
	fi
done
build_kwok=false
if ! up_to_date kwok; then
	build_kwok=true
fi

if [[ ${#k8s_pkgs[@]} -eq 0 && "${build_kwok}" == false ]]; then
	echo "kube-controller-manager, kube-scheduler, kubectl and kwok are up to date in ${outdir}"
	exit 0
fi

echo "Building cluster binaries (Kubernetes ${K8S_VERSION}, kwok) from Go modules into ${outdir} (several minutes when cold)"
rm -f "${outdir}"/.cluster-*
# The stamp is written only after every binary built, so a failed or interrupted build is
# redone in full next time.
(
	cd "${here}/k8s"
	if [[ ${#k8s_pkgs[@]} -gt 0 ]]; then
		echo "  ${k8s_pkgs[*]}"
		CGO_ENABLED=0 go build -trimpath -ldflags "${K8S_LDFLAGS}" -o "${outdir}/" "${k8s_pkgs[@]}"
	fi
	if [[ "${build_kwok}" == true ]]; then
		echo "  sigs.k8s.io/kwok/cmd/kwok"
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${outdir}/kwok" sigs.k8s.io/kwok/cmd/kwok
	fi
)
touch "${stamp}"
echo "Built cluster binaries in ${outdir}"

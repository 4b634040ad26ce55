#!/usr/bin/env bash
# The main job on the bundled examples: set up, then gate the hardened and the insecure bundle.
# The hardened bundle must pass (exit 0) and the insecure one must fail the gate (exit 1); this
# script exits non-zero when either expectation does not hold.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null || exit 2
FG=.venv/bin/factorygate
mkdir -p out
status=0
echo "== factorygate scan examples/k8s/hardened (expect exit 0)"
$FG scan examples/k8s/hardened --format sarif --output out/hardened.sarif
code=$?; echo "exit $code"; [[ $code -eq 0 ]] || status=1
echo
echo "== factorygate scan examples/k8s/insecure --policy examples/policy.yaml (expect exit 1)"
$FG scan examples/k8s/insecure --policy examples/policy.yaml
code=$?
$FG scan examples/k8s/insecure --policy examples/policy.yaml --format json --output out/insecure.json 2>/dev/null
$FG scan examples/k8s/insecure --policy examples/policy.yaml --format junit --output out/insecure.junit.xml 2>/dev/null
echo "exit $code (1 = the gate found policy failures, as it should)"; [[ $code -eq 1 ]] || status=1
echo
echo "== factorygate scan examples/docker/hardened (expect exit 0)"
$FG scan examples/docker/hardened --format sarif --output out/docker-hardened.sarif
code=$?; echo "exit $code"; [[ $code -eq 0 ]] || status=1
echo
echo "== factorygate scan examples/docker/insecure (expect exit 1)"
$FG scan examples/docker/insecure
code=$?; echo "exit $code (1 = the gate found policy failures, as it should)"; [[ $code -eq 1 ]] || status=1
$FG scan examples/docker/insecure --format json --output out/docker-insecure.json 2>/dev/null
echo
echo "== factorygate report: one release's results as evidence for the Authorizing Official"
for fmt in html ckl cklb oscal hdf; do
  ext=$fmt; [[ $fmt == oscal || $fmt == hdf ]] && ext=$fmt.json
  $FG report out/insecure.json out/docker-insecure.json --policy examples/policy.yaml --format $fmt \
    --output out/release.$ext 2>/dev/null
  code=$?; echo "out/release.$ext (exit $code: the release has policy failures)"; [[ $code -eq 1 ]] || status=1
done
echo
echo "== factorygate audit --snapshot examples/cluster/snapshot.yaml (a saved cluster state; expect exit 1)"
$FG audit --snapshot examples/cluster/snapshot.yaml --format html --output out/audit.html
code=$?; echo "out/audit.html (exit $code: workloads, cluster checks and the conformance scorecard)"
[[ $code -eq 1 ]] || status=1
$FG audit --snapshot examples/cluster/snapshot.yaml --format ckl --output out/audit.ckl 2>/dev/null
echo "reports written to out/: hardened.sarif insecure.json insecure.junit.xml docker-hardened.sarif release.* audit.*"
exit $status

#!/usr/bin/env bash
# System packages for the tenant network datapath (src/hypernetes/network):
#   nftables     - libnftables (the datapath loads it for bridge filtering and NAT) and `nft`
#   iperf3       - pod<->pod throughput in benchmarks/network_bench.py
#   iputils-ping - reachability checks in tests/network
# Idempotent: installs only what is missing.
set -euo pipefail
debs=(nftables libnftables1 iperf3 iputils-ping)
missing=()
for p in "${debs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup.d/network: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

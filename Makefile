# Conclave developer commands. `make cluster` and `make test` are the two a newcomer needs.
CARGO ?= cargo
# `make cluster TLS=1`: the local cluster with TLS on every port.
TLS ?= 0

.PHONY: cluster test deps build lint fmt clean bench bench-controller gateway-bench chaos

## Start a local 3-member cluster on loopback (data in ./data); `make cluster TLS=1`
## for TLS on every port, with certificates generated in ./data/tls.
cluster: deps
	TLS=$(TLS) scripts/cluster.sh

## Run every test: unit, property, storage-suite and real-process cluster tests.
## Release mode: the cluster tests time elections and failovers. The binaries and the
## SDK's examples are built first: tests run them as real processes.
test: deps
	$(CARGO) build --release --workspace --bins --examples
	$(CARGO) test --release --workspace

## Install the Debian packages the build and tests need (protoc, etcdctl).
deps:
	scripts/install-deps.sh

## Conclave vs etcd 3.4 side by side (3 members each, loopback), and Conclave with TLS vs
## without (the TLS rows); writes docs/benchmarks.md.
bench: deps
	scripts/bench.sh

## The partition controller: placement and plan time for P = 4096, R = 3 with 10 to 1,000
## members, replicas moved on a join or leave, and crash-to-new-leader and graceful
## hand-over times on a real cluster; writes docs/benchmarks-controller.md.
bench-controller: deps
	scripts/bench-controller.sh

## The HTTP gateway's overhead: requests/s and p99 through the gateway vs direct gRPC,
## same cluster, same run (wrk installed from Debian if missing); writes docs/benchmarks-gateway.md.
gateway-bench: deps
	scripts/gateway-bench.sh

## Long fault-injection schedules (3 and 5 members, seeds 1-3, 60 s each) with a
## linearizability check; `make test` runs a short seeded one.
chaos: deps
	$(CARGO) build --release -p conclave-server -p conclave-chaos
	target/release/conclave-chaos --bin target/release/conclave $(CHAOS_ARGS)

build: deps
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf data
	$(CARGO) clean

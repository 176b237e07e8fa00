# Conclave developer commands. `make cluster` and `make test` are the two a newcomer needs.
CARGO ?= cargo

.PHONY: cluster test deps build lint fmt clean

## Start a local 3-member cluster on loopback (data in ./data).
cluster: deps
	scripts/cluster.sh

## Run every test: unit, property, storage-suite and real-process cluster tests.
## Release mode: the cluster tests time elections and failovers.
test: deps
	$(CARGO) test --release --workspace

## Install the Debian packages the build and tests need (protoc, etcdctl).
deps:
	scripts/install-deps.sh

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

# The two entry points of the README, plus benchmarks. Everything runs as root.
.PHONY: deps wasm-apps build demo test bench-start bench-wasm bench-shim

deps:
	bash .ci/deps

# The wasm guests (wasm32-wasip1/-wasip2) and the native twin of the CPU kernel.
wasm-apps: deps
	bash wasm-apps/build.sh

build: deps wasm-apps
	cargo build --release -p wrun -p containerd-shim-wrun

# A native container from a busybox bundle (create, state, start, run, delete), then a wasm one.
demo: build
	bash tests/demo.sh

# The whole test suite: unit tests and the end-to-end tests against the real kernel.
test: deps wasm-apps
	cargo build --workspace
	cargo test --workspace --no-fail-fast

# wrun vs runc vs crun start-to-exit latency (hyperfine medians, same run).
bench-start: build
	bash benches/start-latency.sh

# wasm vs native side by side: start-to-exit, cache hit vs miss, nbody both forms.
bench-wasm: build
	bash benches/wasm-start.sh

# ctr run --rm through containerd-shim-wrun-v1 vs runc.v2 (one containerd, interleaved), idle shim memory.
bench-shim: build
	bash benches/containerd-shim.sh

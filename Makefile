# The two entry points of the README, plus benchmarks. Everything runs as root.
.PHONY: deps deps-demo wasm-apps build demo install uninstall deb test test-v2 bench bench-start bench-wasm bench-cri bench-front bench-build

# Everything the tests and benches need (apt packages, rustup components and targets).
deps:
	bash .ci/deps

# Only what building wrun and the demo need.
deps-demo:
	bash .ci/deps demo

# The wasm guests (wasm32-wasip1/-wasip2) and the native twin of the CPU kernel.
wasm-apps: deps-demo
	bash wasm-apps/build.sh

# The release wrun is linked statically (glibc, libseccomp, the unwinder): `create`, `run` and
# `exec` start it twice (the second time from the sealed copy, issue #14), and a static start
# skips the dynamic loader's work (0.56 vs 0.89 ms of CPU for `wrun --version`). Only the wrun
# binary gets the flags: cargo cannot give crt-static to one binary of a workspace whose
# proc-macros must stay dynamic, but `cargo rustc` passes them to the one target it builds.
# A plain `cargo build --release` still gives a working, dynamically linked wrun.
# The shim is linked the same way for its memory: an idle shim maps no libc.so, ld.so or
# libgcc_s, only the parts of glibc it uses (3 idle shims: RSS 3.65 MiB each static against
# 5.03 dynamic, PSS 1.78 against 2.08).
static = -C target-feature=+crt-static -C relocation-model=static
release_wrun = cargo rustc --release -p wrun-cli --bin wrun -- $(static)
release_shim = cargo rustc --release -p containerd-shim-wrun --bin containerd-shim-wrun-v1 -- $(static)
# The monitor of detached containers, the one process that stays beside each: static for the
# same reason as the shim.
release_monitor = cargo rustc --release -p wrun-cli --bin wrun-monitor -- $(static)

build: deps-demo wasm-apps
	$(release_shim)
	$(release_wrun)
	$(release_monitor)

# A native container from a busybox bundle (create, state, start, run, delete), then a wasm one.
demo: build
	bash tests/demo.sh

# The whole test suite: unit tests and the end-to-end tests against this host's kernel, then
# a tiny run of the comparison harness (benches/report-check.sh, ~30 s, with the debug wrun and
# helpers just built), then the cgroup v2 set in a user-mode-linux guest whose only hierarchy is cgroup2
# (test-v2). Each step runs even when an earlier one failed; the target fails if any did.
test: deps wasm-apps
	cargo build --workspace
	bash tests/host-net.sh save
	status=0; cargo test --workspace --no-fail-fast || status=$$?; \
	WRUN=target/debug/wrun bash benches/report-check.sh || status=1; \
	bash tests/host-net.sh restore || status=1; \
	bash tests/v2/suite.sh || status=1; exit $$status

# Only the cgroup v2 set: boots one UML guest (~2 s) and runs the cgroup tests there (~30 s).
test-v2: deps wasm-apps
	cargo build --workspace
	bash tests/v2/suite.sh

# The comparison harness (issue #7): every configuration of each workload, alternating round by
# round, 30 rounds, then 50 idle containers per runtime; writes target/bench-report/report.md
# and its SVG charts. Its two helpers (wasm-bare, peak-rss) are built next to wrun.
bench: deps build
	cargo build --release -p wrun-benches --bins
	bash benches/report.sh

# wrun build vs podman build of the same Dockerfile, uncached and fully cached (issue #18).
bench-build: deps build
	bash benches/build.sh

# wrun vs runc vs crun start-to-exit latency (hyperfine medians, same run).
bench-start: deps build
	bash benches/start-latency.sh

# wasm vs native side by side: start-to-exit, cache hit vs miss, nbody both forms.
bench-wasm: deps build
	bash benches/wasm-start.sh

# Pods through containerd's CRI (issue #9): the pod + container cycle, wrun's shim vs runc.v2,
# and the shim's memory for a two-container pod.
bench-cri: deps build
	bash benches/cri-pod.sh

# The front end (issue #17): `wrun container run --rm IMAGE true` vs `podman run --rm` of the
# same image with crun and with runc (Debian's podman: apt-get install podman), alternating, and
# `wrun container ps` with 50 running containers.
bench-front: deps build
	bash benches/front-run.sh

# Install the binaries (from BIN: the release build by default; `make build` makes it), man
# pages generated from the command line's own definitions, shell completions and example
# configs under DESTDIR/PREFIX. Every file installed is listed in
# PREFIX/share/wrun/install-manifest, which `make uninstall` reads: it removes exactly those
# files, then the directories that became empty.
PREFIX ?= /usr/local
DESTDIR ?=
BIN ?= target/release
root = $(DESTDIR)$(PREFIX)
install:
	@set -eu; m=$$(mktemp); trap 'rm -f "$$m"' EXIT; \
	put() { install -D -m "$$1" "$$2" "$(root)/$$3"; echo "$$3" >> "$$m"; }; \
	for b in wrun wrun-monitor containerd-shim-wrun-v1; do put 755 "$(BIN)/$$b" "bin/$$b"; done; \
	man=$$(mktemp -d); "$(BIN)/wrun" man "$$man"; \
	for f in "$$man"/*.8; do put 644 "$$f" "share/man/man8/$$(basename "$$f")"; done; rm -rf "$$man"; \
	c=$$(mktemp -d); \
	"$(BIN)/wrun" completion bash > "$$c/wrun"; put 644 "$$c/wrun" share/bash-completion/completions/wrun; \
	"$(BIN)/wrun" completion zsh > "$$c/_wrun"; put 644 "$$c/_wrun" share/zsh/site-functions/_wrun; \
	"$(BIN)/wrun" completion fish > "$$c/wrun.fish"; put 644 "$$c/wrun.fish" share/fish/vendor_completions.d/wrun.fish; \
	rm -rf "$$c"; \
	for f in examples/config/*; do put 644 "$$f" "share/doc/wrun/examples/$$(basename "$$f")"; done; \
	put 644 LICENSE share/doc/wrun/LICENSE; \
	echo share/wrun/install-manifest >> "$$m"; install -D -m 644 "$$m" "$(root)/share/wrun/install-manifest"; \
	echo "installed $$(wc -l < "$$m") files under $(root)"

# A Debian package of the same files (packaging/deb.sh: PREFIX=/usr, dpkg-deb):
# `dpkg -i target/wrun_VERSION_ARCH.deb`, `dpkg -r wrun`. DEB names another output file.
DEB ?= target/wrun_$(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -1)_$(shell dpkg --print-architecture 2>/dev/null || echo unknown).deb
deb:
	bash packaging/deb.sh "$(BIN)" "$(DEB)"

uninstall:
	@set -eu; m="$(root)/share/wrun/install-manifest"; \
	[ -f "$$m" ] || { echo "uninstall: $$m: not installed there" >&2; exit 1; }; \
	while read -r f; do \
	  rm -f "$(root)/$$f"; d=$$(dirname "$(root)/$$f"); \
	  while [ "$$d" != "$(root)" ] && rmdir "$$d" 2>/dev/null; do d=$$(dirname "$$d"); done; \
	done < "$$m"; echo "uninstalled from $(root)"

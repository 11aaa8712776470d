# signalbox — the commands a developer and CI run. See README.md.
SHELL := /bin/bash
DEVCLUSTER := deploy/devcluster/devcluster

.PHONY: help deps test run screenshots bench cluster-up cluster-down cluster-build vendor lint

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install the Debian packages the tests need
	scripts/install-deps.sh

test: ## build what is missing, start the dev cluster, run every test, stop the cluster
	scripts/test.sh

run: ## serve the console on http://127.0.0.1:8080 (starts the dev cluster if needed)
	scripts/run.sh $(ARGS)

screenshots: ## every page with its picture, in headless Chromium, into target/screenshots/
	scripts/screenshots.sh

bench: ## benchmarks; figures go to BENCHMARKS.md
	scripts/bench.sh

cluster-build: ## build the pinned control plane into deploy/devcluster/.bin
	deploy/devcluster/build.sh

cluster-up: ## start the dev cluster
	$(DEVCLUSTER) up

cluster-down: ## stop the dev cluster
	$(DEVCLUSTER) down

vendor: ## refresh static/vendor from the pinned npm packages
	npm ci --no-audit --no-fund
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js

lint: ## clippy and rustfmt
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Serverless ETL: Rust Lambda functions on one transform engine.
# `make help` lists the targets. Builds share one target tree (see .cargo/config.toml).

SHELL := /bin/bash
.DEFAULT_GOAL := help

TRIPLE       := x86_64-unknown-linux-gnu
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
BIN_DIR      := $(CARGO_TARGET_DIR)/$(TRIPLE)/release
ETL          := $(BIN_DIR)/etl
BUILD_DIR    ?= $(CURDIR)/build
ROWS         ?= 1000000
SPEC         ?= infra/pipelines/customers.yaml

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build everything (release profile: tests, the CLI and Lambdas share it)
	cargo build --release --workspace --locked

.PHONY: etl
etl: ## Build the local runner (target/.../release/etl)
	@# --workspace, not -p: one feature set for shared dependencies, so polars builds once.
	cargo build --release --workspace --bins --locked

.PHONY: fmt
fmt: ## Format the code
	cargo fmt --all

.PHONY: lint
lint: ## rustfmt check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets --locked -- -D warnings

.PHONY: test
test: ## Run the whole test suite (starts and stops LocalStack itself)
	tests/run-all.sh

.PHONY: test-rust
test-rust: ## Rust tests only (integration tests start LocalStack if it is not up)
	cargo test --release --workspace --locked

.PHONY: test-localstack
test-localstack: ## LocalStack harness suite only (installs and starts what it needs)
	tests/localstack/run-tests.sh

.PHONY: validate-spec
validate-spec: etl ## Check a pipeline spec: make validate-spec SPEC=infra/pipelines/x.yaml
	$(ETL) validate --spec $(SPEC)

.PHONY: demo
demo: etl ## Run the customers pipeline on the sample file into build/demo
	rm -rf $(BUILD_DIR)/demo
	$(ETL) run --spec $(SPEC) --input infra/samples/customers.csv --output $(BUILD_DIR)/demo
	@echo; echo "Parquet files:"; find $(BUILD_DIR)/demo/customers -name '*.parquet' | sort

.PHONY: sample-data
sample-data: etl ## Generate a dirty customers CSV: make sample-data ROWS=1000000
	mkdir -p $(BUILD_DIR)/data
	$(ETL) generate --rows $(ROWS) --output $(BUILD_DIR)/data/customers-$(ROWS).csv \
		--expect $(BUILD_DIR)/data/customers-$(ROWS).expect.json
	@ls -lh $(BUILD_DIR)/data/customers-$(ROWS).csv

.PHONY: bench
bench: etl ## Benchmark against pandas, polars and DuckDB: make bench ROWS=1000000
	ROWS=$(ROWS) tests/bench/run.sh

.PHONY: local-up
local-up: ## Start LocalStack in host mode on 127.0.0.1:4566 (no Docker)
	tests/localstack/localstack.sh up

.PHONY: local-down
local-down: ## Stop LocalStack
	tests/localstack/localstack.sh down

.PHONY: clean
clean: ## Remove build outputs in the repo (not the shared target dir)
	rm -rf $(BUILD_DIR)

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
# Lambda architecture of `make build` / `make deploy`. Templates default to arm64 for AWS;
# arm64 builds need the aarch64-unknown-linux-gnu Rust target (rustup target add ...).
ARCH         ?= x86_64
STACK        ?= serverless-etl-dev
LOCAL_STACK  ?= serverless-etl-local
LS_PYTHON     = $(shell tests/localstack/localstack.sh python)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Lambda zips with cargo-lambda into $CARGO_TARGET_DIR/lambda: make build ARCH=arm64
ifeq ($(ARCH),x86_64)
	tests/localstack/tools.sh build-lambdas
else ifeq ($(ARCH),arm64)
	@rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || \
		{ echo "make build ARCH=arm64 needs: rustup target add aarch64-unknown-linux-gnu"; exit 1; }
	"$$(tests/localstack/tools.sh cargo-lambda)" lambda build --release --arm64 --workspace \
		--output-format zip
else
	$(error ARCH must be x86_64 or arm64)
endif

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

.PHONY: validate
validate: ## cfn-lint the template and state machines, sam validate --lint, checkov
	infra/tools.sh validate

.PHONY: deploy-local
deploy-local: local-up build glue-package ## Deploy infra/template.yaml into LocalStack (stack serverless-etl-local)
	"$(LS_PYTHON)" tests/localstack/stack.py deploy --stack-name $(LOCAL_STACK) --param Stage=local

.PHONY: destroy-local
destroy-local: ## Delete the LocalStack stack
	"$(LS_PYTHON)" tests/localstack/stack.py delete --stack-name $(LOCAL_STACK)

.PHONY: demo
demo: local-up build glue-package ## LocalStack: deploy, upload the sample, run the workflow, show the results
	"$(LS_PYTHON)" tests/localstack/demo.py

.PHONY: deploy
deploy: glue-package ## AWS: sam build + sam deploy with infra/samconfig.toml (GUIDED=1 the first time)
	@# SAM's rust-cargolambda build runs cargo-lambda from PATH.
	cd infra && PATH="$$(dirname "$$("$(CURDIR)/tests/localstack/tools.sh" cargo-lambda)"):$$PATH" \
		./tools.sh sam build
	@# sam deploy does not upload the Glue job's --extra-py-files: upload.py does, and adds
	@# GluePackageUri to samconfig's parameter overrides (not on the first, guided deploy).
	cd infra && if [ -n "$(GUIDED)" ]; then ./tools.sh sam deploy --stack-name $(STACK) --guided; else \
		overrides="$$(./tools.sh python glue/upload.py --stack $(STACK) --zip $(BUILD_DIR)/glue/etl_spark.zip)" && \
		./tools.sh sam deploy --stack-name $(STACK) --parameter-overrides $$overrides; fi

.PHONY: destroy
destroy: ## AWS: delete the stack (empty its buckets first; see README)
	cd infra && ./tools.sh sam delete --stack-name $(STACK)

.PHONY: demo-cli
demo-cli: etl ## No AWS at all: the local runner on the sample file into build/demo
	rm -rf $(BUILD_DIR)/demo
	$(ETL) run --spec $(SPEC) --input infra/samples/customers.csv --output $(BUILD_DIR)/demo
	@echo; echo "Parquet files:"; find $(BUILD_DIR)/demo/customers -name '*.parquet' | sort

.PHONY: spark-run
spark-run: etl ## The Spark runner on a local file, same layout as etl run: make spark-run SPEC=... INPUT=... OUTPUT=...
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make spark-run SPEC=<spec> INPUT=<file> OUTPUT=<dir>"; exit 2; }
	mkdir -p $(BUILD_DIR)
	$(ETL) plan --spec $(SPEC) --target spark > $(BUILD_DIR)/spark-plan.json
	venv="$$(tests/venv.sh tests/spark/requirements.lock spark)" && \
		PYTHONPATH=$(CURDIR)/infra/glue "$$venv/bin/python" -m etl_spark.local \
		--plan $(BUILD_DIR)/spark-plan.json --input $(INPUT) --output $(OUTPUT)

.PHONY: glue-package
glue-package: etl ## The Glue job's --extra-py-files: build/glue/etl_spark.zip (etl_spark + every spec's plan)
	python3 infra/glue/package.py --etl $(ETL) --out $(BUILD_DIR)/glue/etl_spark.zip

.PHONY: test-spark
test-spark: etl ## The Spark runner against the engine on every spec (tests/spark)
	tests/spark/run.sh

.PHONY: sample-data
sample-data: etl ## Generate a dirty customers CSV: make sample-data ROWS=1000000
	mkdir -p $(BUILD_DIR)/data
	$(ETL) generate --rows $(ROWS) --output $(BUILD_DIR)/data/customers-$(ROWS).csv \
		--expect $(BUILD_DIR)/data/customers-$(ROWS).expect.json
	@ls -lh $(BUILD_DIR)/data/customers-$(ROWS).csv

.PHONY: bench
bench: etl ## Engine vs pandas, polars, DuckDB (median of ROUNDS=3) and the Spark runner (SPARK_ROUNDS=1), then bench-functions
	ROWS=$(ROWS) tests/bench/run.sh
	@$(MAKE) --no-print-directory bench-functions

.PHONY: bench-functions
bench-functions: etl ## Lambda zip sizes (dist), cold start, kinesis records/s (DIST_TARGET_DIR=...)
	tests/bench/functions.sh

.PHONY: bench-big
bench-big: etl local-up build ## ~5 GB CSV and NDJSON, local and from LocalStack S3: peak RSS (GB=5)
	"$(LS_PYTHON)" tests/bench/big.py $(ETL) $(CARGO_TARGET_DIR)/lambda $(BUILD_DIR)/big --gb $(or $(GB),5)

.PHONY: local-up
local-up: ## Start LocalStack in host mode on 127.0.0.1:4566 (no Docker); idempotent
	tests/localstack/localstack.sh up

.PHONY: local-down
local-down: ## Stop LocalStack
	tests/localstack/localstack.sh down

.PHONY: clean
clean: ## Remove build outputs in the repo (not the shared target dir)
	rm -rf $(BUILD_DIR)

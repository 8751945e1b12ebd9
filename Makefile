# zcart: the two quick-start commands and the longer runs.
#
#   make run    install deps, build, start a local cluster + demo session
#   make test   install deps, build (normal + ASan/UBSan), run the whole suite
#
# Everything else is for developers; see README.md and docs/.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= 2
RUN_DIR    ?= run
CLUSTER    := deploy/local/zcart-cluster

.PHONY: all deps build build-asan run stop status package drills test test-normal test-asan unit sim bench bench-compare bench-budget bench-gateway bench-failover bench-scale chaos chaos-smoke chaos-mutants clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DZCART_SANITIZE=ON \
	       -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# Start a fresh local cluster (stock, 3 broker replicas, cart nodes; the data
# of an earlier `make run` is wiped), run a scripted demo session against it
# and leave it running.
run: build
	@$(CLUSTER) down --dir $(RUN_DIR) >/dev/null 2>&1 || true
	@$(CLUSTER) up --fresh --dir $(RUN_DIR) --bin $(BUILD)/bin
	@bash scripts/demo.sh $(RUN_DIR) $(BUILD)/bin

stop:
	@$(CLUSTER) down --dir $(RUN_DIR)

status:
	@$(CLUSTER) status --dir $(RUN_DIR)

# The whole suite, in the normal build and again under ASan + UBSan, then
# a 90 s seeded chaos run (make chaos-smoke CHAOS_SEED=1 replays it), then
# the .deb built, installed, verified and removed (scripts/check-package.sh).
test: build build-asan
	@bash scripts/run-tests.sh --chaos-smoke $(BUILD)/bin --package $(BUILD) $(BUILD) $(ASAN_BUILD)

# The operator drills under load (docs/operations.md, "Drills"): make drills [DRILLS_ONLY=a,b]
DRILLS_ONLY ?=
drills: build
	@/usr/bin/python3 tests/drills/drills.py --bin $(BUILD)/bin $(if $(DRILLS_ONLY),--only $(DRILLS_ONLY))

# The .deb (CPack, deploy/package.cmake): build/zcart_VERSION_amd64.deb
package: build
	@cd $(BUILD) && cpack -G DEB

test-normal: build
	@bash scripts/run-tests.sh $(BUILD)

unit: build
	@ctest --test-dir $(BUILD) -L unit --output-on-failure

# More simulation seeds than `make test` runs: make sim SEEDS=5000 [SEED=1]
# [SIMFLAGS=...]; membership changes and leadership transfers included by
# default; the servers' LMDB files live in /dev/shm (ZCART_SIM_DIR).
SEEDS ?= 2000
SEED  ?= 1
SIMFLAGS ?= --membership --transfers
sim: build
	@ZCART_SIM_DIR=$${ZCART_SIM_DIR:-/dev/shm} $(BUILD)/bin/zcart-sim --servers 3 --seed $(SEED) --seeds $(SEEDS) $(SIMFLAGS)
	@ZCART_SIM_DIR=$${ZCART_SIM_DIR:-/dev/shm} $(BUILD)/bin/zcart-sim --servers 5 --seed $(SEED) --seeds $(SEEDS) $(SIMFLAGS)

# zcart-bench on fresh local clusters (bench/README.md): make bench [REPLICAS="1 3"] [CONC=8] [SECS=5]
bench: build
	@bash bench/run.sh $(BUILD)/bin

# zcart beside its raw floors (raw libzmq 2-hop, fdatasync), interleaved, with the
# ratios of issue 16 and PASS/FAIL (bench/README.md): make bench-compare [COMPARE_ARGS=--json]
COMPARE_ARGS ?=
bench-compare: build
	@/usr/bin/python3 bench/compare.py --bin $(BUILD)/bin $(COMPARE_ARGS)

# Where one routed add's time goes, secure and insecure in turns, from the
# daemons' own histograms (bench/README.md "Latency budget").
#   make bench-budget [BUDGET_ARGS="--rounds 3 --seconds 10 --json"]
BUDGET_ARGS ?=
bench-budget: build
	@/usr/bin/python3 bench/budget.py --bin $(BUILD)/bin $(BUDGET_ARGS)

# The same routed add through the REST gateway (wrk, HTTP keep-alive) and
# through libzcart (zcart-bench), interleaved: make bench-gateway [GATEWAY_ARGS="--rounds 5"]
bench-gateway: build
	@/usr/bin/python3 bench/gateway.py --bin $(BUILD)/bin --install $(GATEWAY_ARGS)

# Kill-the-leader drills under zcart-bench load (bench/README.md): make bench-failover [DRILLS=10]
# [FAILOVER_ARGS="--fresh --election-timeout 1000 --heartbeat-timeout 100"]
DRILLS        ?= 10
FAILOVER_ARGS ?=
bench-failover: build
	@/usr/bin/python3 bench/failover.py --drills $(DRILLS) --bin $(BUILD)/bin $(FAILOVER_ARGS)

# 100k carts, 1M sessions on local 3-replica clusters (bench/README.md; long: about
# SESSIONS / (new sessions per second) plus ~10 min).  Small first:
#   make bench-scale SCALE_ARGS="--nodes 4 --slots 100 --sessions 5000 --measure 5"
SCALE_ARGS ?=
bench-scale: build
	@/usr/bin/python3 bench/scale.py --bin $(BUILD)/bin $(SCALE_ARGS)

# Jepsen-style chaos runs (docs/chaos.md; root: network namespaces and nft).
#   make chaos [CHAOS_DURATION=300] [CHAOS_SEED=N] [CHAOS_NEMESES=mixed|a,b] [CHAOS_CLIENTS=10]
#              [CHAOS_ARGS="--interval 10 --rate 2 --keep ..."]
#   make chaos CHAOS_SEEDS="1,2,3" [CHAOS_FIVE_EVERY=K]   a campaign: one run per seed, a
#              table and coverage totals; fails on an invalid run or a zero total
#   make chaos-smoke    a short mixed run (90 s of faults, under 3 minutes)
#   make chaos-mutants [MUTANTS=a,b] [MUTANT_SEEDS=1,2]   build each daemon mutant, run it,
#              table of caught / not caught (tests/chaos/mutants.py)
CHAOS_DURATION ?= 300
CHAOS_SEED     ?=
CHAOS_SEEDS    ?=
CHAOS_FIVE_EVERY ?= 0
CHAOS_NEMESES  ?= mixed
CHAOS_CLIENTS  ?= 10
CHAOS_ARGS     ?=
MUTANTS        ?=
MUTANT_SEEDS   ?= 1,2
CHAOS          := /usr/bin/python3 tests/chaos/run.py --bin $(BUILD)/bin
chaos: build
ifneq ($(CHAOS_SEEDS),)
	@/usr/bin/python3 tests/chaos/campaign.py --bin $(BUILD)/bin --seeds $(CHAOS_SEEDS) \
	          --five-every $(CHAOS_FIVE_EVERY) -- --duration $(CHAOS_DURATION) \
	          --nemeses $(CHAOS_NEMESES) --clients $(CHAOS_CLIENTS) $(CHAOS_ARGS)
else
	@$(CHAOS) --duration $(CHAOS_DURATION) --nemeses $(CHAOS_NEMESES) --clients $(CHAOS_CLIENTS) \
	          $(if $(CHAOS_SEED),--seed $(CHAOS_SEED)) $(CHAOS_ARGS)
endif

chaos-mutants: build
	@/usr/bin/python3 tests/chaos/mutants.py --control --seeds $(MUTANT_SEEDS) \
	          $(if $(MUTANTS),--mutants $(MUTANTS))

chaos-smoke: build
	@$(CHAOS) --duration 90 --interval 4 --fault-duration 3:8 --converge-timeout 40 \
	          --clients $(CHAOS_CLIENTS) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED)) $(CHAOS_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

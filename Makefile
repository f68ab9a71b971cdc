# pgha.cluster — see README.md. Everything a target needs is installed by it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

HA ?= $(shell sed -n 's/^pgha_default_ha: *//p' playbooks/vars/defaults.yml)
VENV := .venv
BIN := $(VENV)/bin
COLLECTION_LINK := .cache/collections/ansible_collections/pgha/cluster
# Molecule scenarios run by `make test`: the longest first, so the lanes end together.
MOLECULE_LONGEST_FIRST := patroni paf pgpool repmgr streaming repmgr-witness postgresql lab
MOLECULE_FOUND := $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml))
MOLECULE_SCENARIOS ?= $(filter $(MOLECULE_FOUND),$(MOLECULE_LONGEST_FIRST)) $(filter-out $(MOLECULE_LONGEST_FIRST),$(MOLECULE_FOUND))
PYTEST_ARGS ?=
# `make test` runs its jobs in this many lanes side by side (tools/run_parallel.py);
# each job's output goes to $(TEST_LOGS)/<job>.log. The compare smoke test runs
# alone: beside another job on two cores its operator failover ran past the write
# probe's window. The Molecule scenarios wait on bounded retries, not on a window.
TEST_JOBS ?= 2
TEST_LOGS := .cache/test-logs

export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
# Where the lab keeps its package caches and image build area.
export PGHA_LAB_CACHE := $(or $(PGHA_LAB_CACHE),$(HOME)/.cache/pgha-lab)
LAB_CACHE := $(PGHA_LAB_CACHE)
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0

# The commands behind lint, sanity, pytest, molecule and compare-smoke, shared by
# those targets and `make test` (no single quotes: run_parallel.py gets them quoted).
LINT_CMD = $(BIN)/yamllint -s . && PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint --profile production -q
SANITY_CMD = tools/ansible-test-sanity
PYTEST_CMD = $(BIN)/pytest $(PYTEST_ARGS)
MOLECULE_CMD = PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test -s
COMPARE_SMOKE_CMD = PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -p no:cacheprovider tests/lab

.PHONY: help setup host-deps venv lab-image lab-up lab-down demo status test lint sanity pytest molecule compare-smoke build clean

help:
	@echo "make demo [HA=$(HA)]  set up everything, start the lab, deploy HA=<solution>, show the cluster"
	@echo "make test             set up everything and run the whole test suite"
	@echo "make lab-up|lab-down  create or remove the local lab of systemd containers"
	@echo "make build            build the collection tarball"
	@echo "make clean            remove the lab, the venv and caches"

host-deps:
	@echo "==> host packages"
	@tools/install-host-deps
	@# fails with the Debian package to install when a tool the lab or the tests use is missing
	@tools/check-host

$(BIN)/.installed: requirements.txt
	@echo "==> python venv ($(VENV))"
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -r requirements.txt
	@touch $@

$(COLLECTION_LINK):
	@mkdir -p $(dir $@)
	@ln -sfn ../../../.. $@

venv: $(BIN)/.installed $(COLLECTION_LINK)

setup: host-deps venv

lab-image: setup
	@echo "==> lab base image"
	@$(BIN)/ansible-playbook playbooks/lab.yml -e lab_state=image
	@# Package caches for the Molecule nodes (one per node: apt locks its cache).
	@for scenario in $(MOLECULE_SCENARIOS); do for node in pg1 pg2 pg3 client witness; do \
	  mkdir -p "$(LAB_CACHE)/apt-archives/$$scenario-$$node/partial"; done; done

lab-up: setup
	@echo "==> lab up"
	@$(BIN)/ansible-playbook playbooks/lab.yml -e lab_state=present

lab-down: venv
	@echo "==> lab down"
	@$(BIN)/ansible-playbook playbooks/lab.yml -e lab_state=absent

demo: lab-up
	@echo "==> deploy ha=$(HA) on the lab"
	@$(BIN)/ansible-playbook site.yml -e ha=$(HA)
	@$(MAKE) --no-print-directory status

status: venv
	@$(BIN)/ansible-playbook playbooks/status.yml -e ha=$(HA)

lint: venv
	@echo "==> yamllint, ansible-lint (production profile)"
	@$(LINT_CMD)

sanity: venv
	@echo "==> ansible-test sanity"
	@$(SANITY_CMD)

pytest: setup
	@echo "==> unit and integration tests (real PostgreSQL and Pgpool-II on loopback)"
	@$(PYTEST_CMD)

molecule: lab-image
	@for scenario in $(MOLECULE_SCENARIOS); do \
	  echo "==> molecule test -s $$scenario"; \
	  $(MOLECULE_CMD) $$scenario || exit 1; \
	done

# One short drill through playbooks/compare.yml, so the comparison path keeps working.
compare-smoke: lab-image
	@echo "==> compare.yml smoke tests (streaming: one host crash, one network partition; patroni synchronous: one switchover, no stale read)"
	@$(COMPARE_SMOKE_CMD)

# Everything, in $(TEST_JOBS) lanes: the quick checks first (a lint error stops the
# run early), then the longest jobs. The pgpool scenario runs alone too: its health
# checks give a primary 2 s, and with pytest's servers beside it on two cores the
# new primary was once found stopped right after the switchover (2026-12-06).
ALONE_JOBS = compare-smoke $(if $(filter pgpool,$(MOLECULE_SCENARIOS)),molecule-pgpool)
test: setup lab-image
	@echo "==> test jobs in $(TEST_JOBS) lanes (logs in $(TEST_LOGS)/)"
	@$(BIN)/python tools/run_parallel.py --jobs $(TEST_JOBS) $(foreach j,$(ALONE_JOBS),--alone $(j)) --log-dir $(TEST_LOGS) \
	  'lint=$(LINT_CMD)' 'sanity=$(SANITY_CMD)' 'compare-smoke=$(COMPARE_SMOKE_CMD)' \
	  'pytest=$(PYTEST_CMD)' $(foreach s,$(MOLECULE_SCENARIOS),'molecule-$(s)=$(MOLECULE_CMD) $(s)')
	@echo "==> all tests passed"

build: venv
	@mkdir -p build
	@$(BIN)/ansible-galaxy collection build --force --output-path build .

clean:
	-@test -x $(BIN)/ansible-playbook && $(BIN)/ansible-playbook playbooks/lab.yml -e lab_state=absent >/dev/null
	rm -rf $(VENV) .cache build tests/output

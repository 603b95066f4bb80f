# MDMA-assisted therapy for PTSD: psychoeducation assistant.
# `make run` and `make test` do all set-up on a fresh machine.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
RASA   := $(VENV)/bin/rasa
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export PYTHONWARNINGS := ignore::DeprecationWarning

# Rasa 3.6 supports Python 3.8-3.10 only; find a 3.10 interpreter.
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)

# A model is trained again only when one of these changed.
MODEL_INPUTS := config.yml domain.yml $(wildcard data/*.yml) $(wildcard bot/nlu/*.py) $(wildcard bot/embeddings/*.py) $(wildcard bot/policies/*.py) bot/nlp.py requirements.lock

.PHONY: help install browser train run shell test lint validate pytest stories evaluate bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed web/node_modules/.installed ## Create .venv and web/node_modules with pinned dependencies

$(VENV)/.installed: requirements.lock
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required (Rasa 3.6 supports 3.8-3.10). Install it or set PYTHON310=/path/to/python3.10." >&2; exit 1; }
	@echo "Creating $(VENV) with $(PYTHON310) and installing pinned dependencies (about 3 GB, a few minutes)..."
	$(PYTHON310) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "pip==26.3"
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	touch $@

# The web chat's browser library (socket.io-client), served locally: no CDN.
web/node_modules/.installed: web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is required for the web chat widget." >&2; exit 1; }
	npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# Browser tests drive Debian's Chromium with Playwright (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's chromium for the browser tests..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "The browser tests need Chromium at $(CHROMIUM) (Debian: sudo apt-get install chromium)." >&2; exit 1; \
		fi; \
	fi

train: models/.trained ## Train a model unless one exists for the current data and config

models/.trained: $(VENV)/.installed $(MODEL_INPUTS)
	$(PY) -m bot train
	@mkdir -p models && touch $@

run: install train ## Start the action server (5055) and Rasa server (5005); Ctrl-C stops all
	$(PY) -m bot run

shell: install train ## Chat with the assistant in the terminal
	$(PY) -m bot shell

lint: install ## Static checks
	$(VENV)/bin/ruff check bot actions tests $(wildcard bench)
	$(VENV)/bin/mypy bot actions

validate: install ## Check the training data and domain
	$(RASA) data validate --quiet

pytest: install train browser ## Unit, component, action, end-to-end and browser tests
	$(VENV)/bin/pytest

stories: install train ## Conversation tests (fail on any prediction error)
	$(RASA) test core --stories tests/test_stories.yml --fail-on-prediction-errors --out results/stories

# Every held-out set: no missed risk and <= 2% false alarms on the risk sets, <= 2%
# false alarms on every FAQ set, FAQ accuracy >= 90% on the
# two older FAQ sets and >= 93% on v2 (all 28 topics; 95% there today).
RISK_GATE := --min-escalation-recall 1.0 --max-false-escalation-rate 0.02 --no-progress
FAQ_GATE  := --max-false-escalation-rate 0.02 --no-progress

evaluate: install train ## Held-out checks: no missed risk, <= 2% false alarms, FAQ accuracy floors
	$(PY) -m bot evaluate tests/heldout/risk_cases.yml $(RISK_GATE) --json results/risk_eval.json
	$(PY) -m bot evaluate tests/heldout/risk_cases_v2.yml $(RISK_GATE) --json results/risk_eval_v2.json
	$(PY) -m bot evaluate tests/heldout/faq_cases.yml $(FAQ_GATE) --min-faq-accuracy 0.90 --json results/faq_eval.json
	$(PY) -m bot evaluate tests/heldout/faq_cases_fresh.yml $(FAQ_GATE) --min-faq-accuracy 0.90 \
		--json results/faq_eval_fresh.json
	@# v2 is the newest fresh set (all 28 topics): 95.2% today; the floor leaves room for retraining noise.
	$(PY) -m bot evaluate tests/heldout/faq_cases_v2.yml $(FAQ_GATE) --min-faq-accuracy 0.93 --json results/faq_eval_v2.json

test: install train lint validate pytest stories evaluate ## Everything CI runs
	@echo "All checks passed."

bench: install ## Our config.yml against Rasa 3.6's default; writes bench/results.md (about 40 min, idle machine)
	$(PY) -m bench $(BENCH_ARGS)

clean: ## Remove models and results (keeps .venv)
	rm -rf models results .pytest_cache .ruff_cache .mypy_cache

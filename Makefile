# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv dev-venv db-start db-stop superuser lint format check static serve bench clean lock

# Installs from the lock files only: every package pinned, every file checked against its
# hash (--require-hashes), nothing resolved at install time.
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check --require-hashes

# The runtime requirements, plus the tools README commands run (squawk for
# `manage.py sqlmigrations lint`); deploys install requirements.txt alone.
$(VENV)/.runtime: requirements.txt requirements-tools.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt -r requirements-tools.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

## run: virtualenv, local database (unless DATABASE_URL is set), migrations, demo data and
## its analytics rollups, server
run: $(VENV)/.runtime
	$(PY) manage.py devdb start --if-no-database-url
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demodata
	$(PY) manage.py analytics refresh
	$(PY) manage.py runserver $(HOST):$(PORT)

## test: virtualenv with test tools, then the whole test suite, a worker a core
## (TEST_WORKERS=0 runs it in one process), twice: the application's connections
## direct, then through PgBouncer in transaction mode (TEST_POOLERS=direct: once)
TEST_WORKERS ?= auto
TEST_POOLERS ?= direct pgbouncer
test: $(VENV)/.dev
	@for pooler in $(TEST_POOLERS); do \
		echo "== the test suite, the application's connections: $$pooler"; \
		case $$pooler in direct) via= ;; *) via=$$pooler ;; esac; \
		DJANGO_ENV=test TEST_DB_POOLER=$$via $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS) \
			|| exit $$?; \
	done

superuser: $(VENV)/.runtime
	$(PY) manage.py devdb start --if-no-database-url
	$(PY) manage.py migrate --no-input
	$(PY) manage.py createsuperuser

db-start: $(VENV)/.runtime
	$(PY) manage.py devdb start
db-stop: $(VENV)/.runtime
	$(PY) manage.py devdb stop

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: $(VENV)/.runtime
	$(PY) manage.py devdb start --if-no-database-url
	$(PY) manage.py check

## static: the admin's static files, hashed and compressed, into STATIC_ROOT (var/static):
## the image build runs it (no database or secrets needed); WhiteNoise serves them
static: $(VENV)/.runtime
	STATIC_MANIFEST=true $(PY) manage.py collectstatic --no-input -v0

## serve: the production server (gunicorn.conf.py) on the local database, DEBUG off
serve: static
	$(PY) manage.py devdb start --if-no-database-url
	$(PY) manage.py migrate --no-input
	DEBUG=false STATIC_MANIFEST=true $(VENV)/bin/gunicorn -c gunicorn.conf.py --bind $(HOST):$(PORT)

## bench: every benchmark under bench/ (each prints its figures and ratios; slow)
bench: $(VENV)/.dev
	$(PY) bench/migrate_bench.py
	$(PY) bench/backup_bench.py
	$(PY) bench/pool_bench.py
	$(PY) bench/query_patterns_bench.py
	$(PY) bench/analytics_bench.py
	$(PY) bench/admin_bench.py
	$(PY) bench/load_bench.py
	$(PY) bench/pooler_bench.py
	$(PY) bench/online_migration_bench.py

## lock: compile requirements*.in into the hashed lock files (after editing an .in file)
LOCK := $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host
lock: $(VENV)/.dev
	$(LOCK) --output-file requirements.txt requirements.in
	$(LOCK) --output-file requirements-tools.txt requirements-tools.in
	$(LOCK) --output-file requirements-dev.txt requirements-dev.in

clean:
	-$(PY) manage.py devdb destroy
	rm -rf $(VENV)

# PenguinMails Release Portal — developer commands. `make run` and `make test` work on a bare machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)
PIP := $(PY) -m pip install -q --disable-pip-version-check
PORT ?= 8000
# Every public link (approval e-mails, subscription confirmations, status.json page.url, the Atom feed) starts with
# PORTAL_URL; `make run` derives it from PORT unless it is set. (honcho gives each process its own PORT, so the
# worker and beat would not know the web's port: they get PORTAL_URL instead.)
PORTAL_URL ?= http://127.0.0.1:$(PORT)

.PHONY: install install-test run test lint check migrate seed worker clean fuzz

$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	rm -f $(VENV)/.installed-run-*
	touch $(RUN_STAMP)

$(TEST_STAMP): $(RUN_STAMP)
	$(PIP) -e '.[test]'
	# statuscheck 3.11.0 pins attrs==20.3.0 and Click==7.1.2 (incompatible with celery and jsonschema) but
	# runs fine with current ones: installed without its pins, for the Statuspage-compatibility tests only.
	$(PIP) --no-deps statuscheck==3.11.0
	# the optional LDAP extra builds python-ldap against libldap2-dev/libsasl2-dev: without them (a bare
	# machine) it is not installed and the LDAP tests are skipped, saying why (.ci/run installs them)
	if [ -f /usr/include/ldap.h ] && [ -f /usr/include/sasl/sasl.h ]; then $(PIP) -e '.[test,ldap]'; \
	else echo "libldap2-dev/libsasl2-dev missing: the ldap extra is not installed, LDAP tests will be skipped"; fi
	rm -f $(VENV)/.installed-test-*
	touch $(TEST_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

# The development runner: web (gunicorn on 127.0.0.1:$(PORT)), Celery worker and beat together under honcho
# (which stops all of them when one dies); embedded SQLite and filesystem broker under var/ unless
# DATABASE_URL / REDIS_URL say otherwise. Production runs them as separate services: deploy/README.md.
run: seed
	@echo ""
	@echo "  PenguinMails Release Portal: $(PORTAL_URL)/admin/"
	@echo "  Log in as admin, ops, approver, approver2, dev, qa, product, support or security"
	@echo "  with the password 'penguin-demo'.  API docs: $(PORTAL_URL)/api/docs/"
	@echo "  Production actions ask for a second factor: enrol an authenticator at /account/2fa/setup/"
	@echo ""
	rm -rf $${VAR_DIR:-var}/prometheus  # the Prometheus multiprocess files of the previous run
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH PORT=$(PORT) PORTAL_URL=$(PORTAL_URL) $(VENV)/bin/honcho start -p $(PORT)

worker: install
	$(VENV)/bin/celery -A pmrelease worker -l info --concurrency 2

# Style, and the layering contract (pyproject.toml [tool.importlinter]: the arrows point down).
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo

# Migrations are complete and production settings pass Django's deployment checks.
check: install-test
	$(PY) manage.py makemigrations --check --dry-run
	DEBUG=false SECRET_KEY=check-deploy-$$(date +%s)-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ \
	  DATABASE_URL=$${DATABASE_URL:-sqlite:///$(CURDIR)/var/check.sqlite3} ALLOWED_HOSTS=releases.example.com \
	  $(PY) manage.py check --deploy --fail-level WARNING

# The whole suite. On a bare machine: SQLite and the filesystem broker. With DATABASE_URL / REDIS_URL set
# (as .ci/run does) it runs against PostgreSQL and Redis, with a real Celery worker in the integration tests.
test: install-test lint check
	rm -rf var/test && mkdir -p var/test
	VAR_DIR=$(CURDIR)/var/test SECRET_KEY=$${SECRET_KEY:-test-only-0123456789abcdefghijklmnopqrstuvwxyz} \
	  SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false \
	  EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend \
	  $(PY) -m pytest $(PYTEST_ARGS)

# A deeper schemathesis run than make test's (FUZZ_EXAMPLES valid and half as many invalid inputs per operation and role).
FUZZ_EXAMPLES ?= 200
fuzz: install-test
	rm -rf var/fuzz && mkdir -p var/fuzz
	VAR_DIR=$(CURDIR)/var/fuzz SECRET_KEY=$${SECRET_KEY:-test-only-0123456789abcdefghijklmnopqrstuvwxyz} \
	  SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false \
	  EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend SCHEMATHESIS_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(PY) -m pytest -s tests/test_schemathesis.py $(PYTEST_ARGS)

clean:
	rm -rf var .pytest_cache .ruff_cache

# Shortcuts for developers; the README's two commands need only python3.
PY := .venv/bin

.PHONY: install demo test lint typecheck openapi migration bench

install:
	python3 bootstrap.py install

demo:
	python3 bootstrap.py demo

test:
	python3 bootstrap.py test

lint: install
	$(PY)/ruff check .

typecheck: install  ## mypy runs on the installed link tree, where api/ … sit under escompte/
	cd build/__editable__.escompte-*/ && $(CURDIR)/$(PY)/mypy --config-file $(CURDIR)/pyproject.toml -p escompte

openapi: install  ## regenerate the committed spec from the app
	$(PY)/escompte openapi --output openapi/openapi.json

migration: install  ## make migration m="what changed"
	$(PY)/alembic revision --autogenerate -m "$(m)"

bench: install
	$(PY)/python bench/run.py

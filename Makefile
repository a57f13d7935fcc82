# One entry point for the usual jobs; CI runs .ci/run (the same install + test).
.PHONY: install test demo bench-convert notebooks
install:
	python3 -m pip install "torch==2.13.0" -e ".[test]"
test:
	python3 -m pytest -q
demo:
	sensorium-data demo
bench-convert:
	python3 -m benchmarks.convert
notebooks:
	python3 notebooks/execute.py

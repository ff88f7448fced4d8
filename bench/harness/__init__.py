"""The benchmark harness behind ``bench/run.py`` (imported with ``bench/`` on ``sys.path``)."""

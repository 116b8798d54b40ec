"""Benchmarking fastcnn against every peer a user could pick: the implementations
(:mod:`.implementations`), the floor each model's speed is measured against (:mod:`.roofline`),
the report (:mod:`.report`), and ``fastcnn bench`` (:mod:`.command`). The suite itself is
``bench/test_latency.py`` (pytest-benchmark)."""

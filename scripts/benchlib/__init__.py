"""Helpers of ``scripts/bench.py throughput``: streams, Kafka, child processes, report.

Each module does one part: ``streams`` writes the seeded events and the reference,
``brokers`` starts the broker and produces them, ``ceiling`` is the bare consumer,
``children`` runs ``monitor run``, ``replay_child`` and ``ceiling`` as child processes and
measures their peak memory, ``storage`` makes throwaway databases and weighs them,
``window`` times one window's evaluation and ``report`` prints the table and records the
machine. Module names avoid those of installed packages (no ``kafka.py``): ``ceiling.py`` and
``replay_child.py`` run as scripts, with this folder first on ``sys.path``.
"""

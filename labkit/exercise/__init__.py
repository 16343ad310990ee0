"""Training exercises: a DMVPN lab with one deliberate fault, a statement, hints, a graded checker.

``spec`` loads and validates ``exercises/<name>/exercise.yaml``; ``library`` holds the named
checks (built on labkit's probes); ``grading`` runs them, scores, writes JSON/CSV and merges
results; ``session`` starts, breaks, attaches to and resets an exercise's lab; ``cli`` is
``labkit exercise``. Student and instructor guide: docs/exercises.md.
"""

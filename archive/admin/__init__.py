"""Operator services: what an archive holds (:mod:`.info`), dropping a catalogue
(:mod:`.drop`); the commands ``extras-archive info`` and ``extras-archive drop
catalogue`` are in :mod:`.cli`."""

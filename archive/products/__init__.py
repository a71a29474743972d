"""Product files over HTTP: looking products up and opening them safely
(:mod:`.store`), streaming zip/tar archives of a selection (:mod:`.bulk`), and the
``products`` blueprint (:mod:`.views`, imported by ``archive.blueprints`` only).
"""

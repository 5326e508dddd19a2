"""The pipeline: the lower stages composed into what a person or the loop asks for.

A training run end to end (:mod:`~loopml.pipeline.train`), a project's first files
(:mod:`~loopml.pipeline.project`), a profile rebuilt for an older version
(:mod:`~loopml.pipeline.backfill`), and the server composed with its background jobs
(:mod:`~loopml.pipeline.serving`).
"""

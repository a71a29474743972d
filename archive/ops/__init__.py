"""Operations: what a load balancer, Prometheus and a log collector read.

``health`` (the database answers: /health), ``metrics`` (prometheus-client counters,
histograms and gauges, multiprocess-aware for gunicorn: /metrics), ``instrument``
(the WSGI middleware that times every request, counts it and writes its access-log
line). No Flask here: the views are ``archive.ops.views``.
"""

"""The validating admission webhook: ``factorygate admission serve``.

- :mod:`~factorygate.admission.review`: an AdmissionReview in, a decision and the response out (pure).
- :mod:`~factorygate.admission.app`: the ASGI application (/validate, /healthz, /readyz, /metrics).
- :mod:`~factorygate.admission.server`: options, start-up checks, uvicorn, workers and signals.
- :mod:`~factorygate.admission.tls`: TLS 1.2+ with the certificate reloaded when its files change.
- :mod:`~factorygate.admission.protocol`: uvicorn's h11 protocol with a header deadline and one write per response.
- :mod:`~factorygate.admission.metrics`, :mod:`~factorygate.admission.jsonlog`: Prometheus metrics, JSON log lines.
"""

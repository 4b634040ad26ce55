"""The validating admission webhook: ``factorygate admission serve``.

- :mod:`~factorygate.admission.review`: an AdmissionReview in, a decision and the response out (pure).
- :mod:`~factorygate.admission.app`: the ASGI application (/validate, /healthz, /readyz, /metrics).
- :mod:`~factorygate.admission.server`: options, TLS, uvicorn, workers and signals.
"""

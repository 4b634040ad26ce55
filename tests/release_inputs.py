"""The small release the report tests share: a Deployment with an inline waiver, and a NetworkPolicy."""

from __future__ import annotations

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
  annotations:
    factorygate.dev/waive.k8s-liveness-probe: >-
      {justification: "Startup handled by the service mesh", approver: "J. Smith", expires: 2099-01-01}
spec:
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: api
          image: nginx:1.25
          securityContext:
            privileged: true
"""
NETWORK_POLICY = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}}
"""
MANIFESTS = DEPLOYMENT + NETWORK_POLICY
# and an expired waiver next to the valid one
EXPIRED_WAIVER = """\
    factorygate.dev/waive.k8s-readiness-probe: >-
      {justification: "Old exception", approver: "A. Jones", expires: 2020-01-01}
"""
MANIFESTS_WITH_EXPIRED_WAIVER = MANIFESTS.replace("spec:\n  template:", EXPIRED_WAIVER + "spec:\n  template:", 1)

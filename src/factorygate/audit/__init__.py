"""`factorygate audit`: the catalog and policy applied to what a cluster really runs (docs/audit.md).

inventory.py    what was read: raw API objects by kind, coverage gaps (forbidden, not served, errors)
kinds.py        the API kinds listed (core kinds + what conformance.py asks for)
live.py         the reader of a live cluster (official Kubernetes client, chunked lists, 403/404/410)
snapshot.py     the reader of saved state (kubectl get -o yaml|json files or directories)
workloads.py    pods folded into their root controllers, with the image digests they run
cluster.py      the cluster checks (STIG V-ids: namespaces, host ports, env Secrets, PSA labels, RBAC)
conformance.py  reference-design conformance scorecard (its own engineer; declarations.py, conformance_data.py)
run.py          inventories -> engine + cluster checks + scorecard -> AuditResult (one section per cluster)
report.py       the audit sections of the text, JSON, HTML and checklist reports
manifests.py    `audit manifests`: ServiceAccount, read-only ClusterRole and binding, CronJob
commands.py     the command line (add_arguments, run, --watch)
"""

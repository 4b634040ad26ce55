"""Policy files: check selection, severities, parameters, waivers and the fail threshold."""

from factorygate.policy.load import default_policy_text, load_policy, parse_policy
from factorygate.policy.schema import Parameters, Policy, WaiverRule

__all__ = ["Parameters", "Policy", "WaiverRule", "default_policy_text", "load_policy", "parse_policy"]

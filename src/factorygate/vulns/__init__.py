"""Vulnerability management: scanner reports merged, an offline OSV matcher, justifications, the gate."""

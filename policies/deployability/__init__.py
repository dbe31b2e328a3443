"""Deployability: a model of the cluster a plan would build, and the checks that it can run its workloads.

Each check is a plain function over the planned resources (as plan.json and the policy engine hold them),
returning Findings; `modelplane plan` prints them and the policy pack enforces them as stack rules.
"""

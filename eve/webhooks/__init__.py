"""Webhooks (#33): an org's endpoints hear when its requests finish.

`sign` makes Standard Webhooks signatures, `guard` keeps deliveries off private addresses,
`endpoints` is what the API manages, `outbox` delivers (a loop in every worker).
"""

EVENTS = ("request.completed", "request.failed", "request.cancelled")

"""Slack: start requests with `/eve`, follow them in a thread, answer and replay with buttons.

A thin adapter over core functions, as the API routes are (issue #20):

* `app.build_app` — the Bolt for Python listeners; the same App serves HTTP mode (the API
  mounts it under /slack/events after `verify` checked the signature) and Socket Mode
  (`eve slack run`): one code path for both.
* `core` — installations (secrets decrypted by `secretbox`), Slack user → eve user, and
  the request created with its outbox row (`eve.slack_threads`) in one transaction.
* `delivery` — the durable outbound side: thread root, one progress message, the result;
  driven by request_events, retried with backoff, run by `eve slack run`.
"""

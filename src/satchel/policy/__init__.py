"""Session policy: every session rule, decided without I/O.

:class:`~satchel.policy.server.ServerSessions` (sessions in a store) and
:class:`~satchel.policy.cookie.CookieSessions` (the session in the cookie) stand
side by side and share timeouts, merging and codecs by composition. Their
methods are generators of store operations (:mod:`satchel.policy.ops`), driven by
a runner (:func:`satchel.manager.run`, and an async runner alike).
"""

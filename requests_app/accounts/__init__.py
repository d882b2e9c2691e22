"""Who is signed in, and how surely: the sign-in doors (password, second factor, Entra ID
single sign-on, re-authentication, password reset), the lockout that covers all of them, and
what a session can prove when an approver decides.

- ``identity``: usernames and client addresses, normalised once for counting and signing in.
- ``lockout``: django-axes, tuned (per account and per address), and its audit events.
- ``twofactor``: who needs a second factor, the two-step sign-in, enrolment, the session proof.
- ``sso``: Microsoft Entra ID (OpenID Connect through Authlib) and its role mapping.
- ``middleware``: idle timeout, no-store, and sessions that lost their second factor.
- ``views`` / ``urls``: the pages.
"""

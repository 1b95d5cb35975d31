"""Identity (issue 19): who may get in and how strongly they proved it.

``oidc`` (sign-in with the company's IdP), ``ldap`` (the directory alternative), ``local`` (passwords, and the
break-glass account when local login is off), ``rolemap`` (portal roles from the source's groups, synchronised at
each sign-in), ``stepup`` (a recent second factor for the actions that change production), ``otp`` (TOTP enrolment
and the second-factor prompt), ``hygiene`` (sign-in, sign-out, failures and lockouts in the audit trail).
"""

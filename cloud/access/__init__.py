"""People's and services' access to the cloud: identities, tokens, roles and scoped grants.

``roles`` (pure model: roles, permissions, grants, principals and scopes), ``passwords``,
``tokens`` (the cloud's own access tokens), ``oidc`` (an external provider's tokens),
``service`` (users, clients, sign-in, refresh, revocation over ``store.access``), ``guard``
(who may call each route, deny by default) and ``routes``/``cli`` (the API and the CLI).
"""

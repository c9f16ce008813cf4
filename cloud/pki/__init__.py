"""Gateway identity on the cloud side: the CA, claim tokens, certificates, revocation."""

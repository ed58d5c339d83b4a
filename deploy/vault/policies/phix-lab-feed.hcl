# Vault ACL policy "phix-lab-feed" for phix machine "lab-feed".
# Generated from the message flows; regenerate rather than edit.

# Wrap data keys for the machines it may send to.
path "transit/encrypt/phix-wrap-billing" {
  capabilities = ["update"]
}
path "transit/encrypt/phix-wrap-ehr-ingest" {
  capabilities = ["update"]
}

# Unwrap data keys addressed to it, and nobody else's.
path "transit/decrypt/phix-wrap-lab-feed" {
  capabilities = ["update"]
}

# Sign envelopes as itself.
path "transit/sign/phix-sign-lab-feed" {
  capabilities = ["update"]
}

# Read every machine's signing public keys to verify senders.
# Read is the only capability: rotate, config and trim need update.
path "transit/keys/phix-sign-*" {
  capabilities = ["read"]
}

# Manage its own token: renew it while in use, tell a dead token
# from a denial, and revoke it at shutdown. AppRole tokens get no
# default policy (phix provisions them so), hence these rules.
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

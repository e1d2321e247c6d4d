-- Signing keys: record whether the private key is sealed with the key encryption key
-- (AES-256-GCM, nonce || ciphertext || tag) or stored as plain PKCS#8 DER.
ALTER TABLE signing_keys ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX signing_keys_activates_at ON signing_keys (activates_at);

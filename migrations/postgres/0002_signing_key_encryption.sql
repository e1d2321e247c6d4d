-- Signing keys: record whether the private key is sealed with the key encryption key
-- (AES-256-GCM, nonce || ciphertext || tag) or stored as plain PKCS#8 DER.
ALTER TABLE signing_keys ADD COLUMN encrypted BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX signing_keys_activates_at ON signing_keys (activates_at);

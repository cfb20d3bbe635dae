DROP TABLE IF EXISTS signing_keys;
DROP TABLE IF EXISTS service_tokens;

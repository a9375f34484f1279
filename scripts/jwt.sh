# Sourced by scripts that call the API: `jwt SUB [SECONDS]` prints an HS256 token for SUB,
# issued now and valid SECONDS (default 300), signed with $BETTER_AUTH_SECRET. Needs openssl.
# (The secret is on openssl's command line while it runs.)

b64url() { base64 | tr '+/' '-_' | tr -d '=\n'; }

jwt() {
  local now header payload signature
  now=$(date +%s)
  header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
  payload=$(printf '{"sub":"%s","iat":%d,"exp":%d}' "$1" "$now" $((now + ${2:-300})) | b64url)
  signature=$(printf '%s' "$header.$payload" | openssl dgst -sha256 -hmac "$BETTER_AUTH_SECRET" -binary | b64url)
  printf '%s.%s.%s' "$header" "$payload" "$signature"
}

#!/usr/bin/env bash
# Regenerates tests/fixtures/jwt.json: HS256 tokens signed by `jose` (npm, as
# a Next.js route signs them) and by `PyJWT` (PyPI) with a fixed test secret,
# Better Auth's cookie-cache payload, and asymmetric tokens signed as Better
# Auth's jwt() plugin signs them (jose: EdDSA on Ed25519, ES256, RS256, PS256,
# header {alg, kid}, its user, sub, iss and aud) and by PyJWT with the same
# keys, beside the JWKS that publishes them (private keys are not kept).
# The interoperability tests in src/auth.rs and tests/api read that file; they
# need neither Node nor Python. This script needs node/npm and python3 (venv).
#
# Usage: scripts/jwt-fixtures.sh   (from anywhere; works in target/jwt-fixtures)
set -euo pipefail

JOSE_VERSION=6.2.18
PYJWT_VERSION=2.15.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$root/target/jwt-fixtures"
out="$root/tests/fixtures/jwt.json"

rm -rf "$work"
mkdir -p "$work" "$(dirname "$out")"
cd "$work"

echo '{"private": true, "type": "module"}' > package.json
npm install --silent --no-audit --no-fund "jose@$JOSE_VERSION"
python3 -m venv venv
venv/bin/pip install --quiet --disable-pip-version-check "PyJWT[crypto]==$PYJWT_VERSION"

# A test-only secret (>= 32 bytes, as the config requires); never a real one.
export FIXTURE_SECRET="todo-api-fixture-secret-for-tests-only-0123456789"
export FIXTURE_EXP=4102444800 # 2100-01-01T00:00:00Z
export JOSE_VERSION

cat > sign.mjs <<'JS'
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

const secret = new TextEncoder().encode(process.env.FIXTURE_SECRET);
const exp = Number(process.env.FIXTURE_EXP);
const appUrl = 'http://localhost:3000';

// The way a Next.js route handler signs a session token for the API.
const nextRoute = (claims, sub) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(secret);

const user = {
  id: 'ba_user_7Hq2xK9',
  email: 'ada@example.com',
  name: 'Ada Lovelace',
  emailVerified: true,
  image: null,
  createdAt: '2025-01-15T10:00:00.000Z',
  updatedAt: '2025-01-15T10:00:00.000Z',
};

const tokens = [
  {
    label: 'jose: Next.js route, sub',
    user_id: 'user_jose',
    token: await nextRoute({ name: 'Ada Lovelace', email: 'ada@example.com' }, 'user_jose'),
  },
  {
    label: 'jose: Next.js route, non-ASCII claims',
    user_id: 'user_jose_é',
    token: await nextRoute({ name: 'Zoë Ñandú 東京 ✓' }, 'user_jose_é'),
  },
  {
    // Better Auth style: no `sub`; `id` plus the user object; its app URL as iss and aud.
    label: 'jose: Better Auth-like, id and user, no sub',
    user_id: user.id,
    issuer: appUrl,
    audience: appUrl,
    token: await new SignJWT({ id: user.id, user })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setIssuer(appUrl)
      .setAudience(appUrl)
      .setExpirationTime(exp)
      .sign(secret),
  },
  {
    label: 'jose: iss and aud array',
    user_id: 'user_jose_aud',
    issuer: 'https://auth.example.com',
    audience: 'todo-api',
    token: await new SignJWT({ scope: 'todos:read todos:write' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject('user_jose_aud')
      .setIssuer('https://auth.example.com')
      .setAudience(['web', 'todo-api'])
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime(exp)
      .sign(secret),
  },
  {
    // Better Auth's cookie cache (HS256 with the secret): session and user, no sub.
    label: 'jose: Better Auth cookie cache, user.id',
    user_id: user.id,
    token: await new SignJWT({
      session: { id: 'ses_1', userId: user.id, token: 'tok_1', expiresAt: '2099-01-01T00:00:00.000Z' },
      user,
    })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(secret),
  },
];

// The jwt() plugin: a key pair per algorithm, published as `{...exportJWK(public), alg, kid}`,
// tokens signed as its signJWT does.
const keys = [];
const privateKeys = [];
for (const [alg, options, kid] of [
  ['EdDSA', { crv: 'Ed25519' }, 'ba-ed25519'],
  ['ES256', {}, 'ba-es256'],
  ['RS256', { modulusLength: 2048 }, 'ba-rs256'],
  ['PS256', { modulusLength: 2048 }, 'ba-ps256'],
]) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { ...options, extractable: true });
  keys.push({ ...(await exportJWK(publicKey)), alg, kid });
  privateKeys.push({ ...(await exportJWK(privateKey)), alg, kid });
  const iat = Math.floor(Date.now() / 1000);
  tokens.push({
    label: `jose: Better Auth jwt() plugin, ${alg}`,
    user_id: user.id,
    issuer: appUrl,
    audience: appUrl,
    token: await new SignJWT({ ...user, iat, sub: user.id })
      .setProtectedHeader({ alg, kid })
      .setExpirationTime(exp)
      .setIssuer(appUrl)
      .setAudience(appUrl)
      .setIssuedAt(iat)
      .setSubject(user.id)
      .sign(privateKey),
  });
}
process.stdout.write(JSON.stringify({ tokens, jwks: { keys }, privateKeys }));
JS
node sign.mjs > jose.json

cat > sign.py <<'PY'
import json
import os
import sys
import time

import jwt

secret = os.environ["FIXTURE_SECRET"]
exp = int(os.environ["FIXTURE_EXP"])
now = int(time.time())

with open(sys.argv[1], encoding="utf-8") as f:
    signed = json.load(f)
tokens, jwks, private_keys = signed["tokens"], signed["jwks"], signed["privateKeys"]


def add(label, user_id, payload, headers=None, issuer=None, audience=None):
    entry = {"label": label, "user_id": user_id}
    if issuer:
        entry["issuer"] = issuer
    if audience:
        entry["audience"] = audience
    entry["token"] = jwt.encode(payload, secret, algorithm="HS256", headers=headers)
    tokens.append(entry)


add("PyJWT: sub", "user_pyjwt", {"sub": "user_pyjwt", "exp": exp, "iat": now})
add(
    "PyJWT: user_id, fractional exp, nbf",
    "user_pyjwt_2",
    {"user_id": "user_pyjwt_2", "exp": exp + 0.5, "iat": now, "nbf": now},
)
add(
    "PyJWT: iss and aud list, kid header, escaped non-ASCII",
    "user_pyjwt_aud",
    {
        "sub": "user_pyjwt_aud",
        "name": "Zoë",
        "iss": "https://auth.example.com",
        "aud": ["todo-api", "admin"],
        "exp": exp,
        "iat": now,
        "jti": "4f1c2d3e",
    },
    headers={"kid": "2025-01"},
    issuer="https://auth.example.com",
    audience="todo-api",
)

for private in private_keys:
    alg, kid = private["alg"], private["kid"]
    tokens.append(
        {
            "label": f"PyJWT: {alg}, the same key",
            "user_id": "user_pyjwt_" + alg.lower(),
            "token": jwt.encode(
                {"sub": "user_pyjwt_" + alg.lower(), "exp": exp, "iat": now},
                jwt.PyJWK(private).key,
                algorithm=alg,
                headers={"kid": kid},
            ),
        }
    )

document = {
    "note": "Generated by scripts/jwt-fixtures.sh. Test-only secret and keys.",
    "libraries": {"jose": os.environ["JOSE_VERSION"], "PyJWT": jwt.__version__},
    "secret": secret,
    "generated_at": int(time.time()),
    "jwks": jwks,
    "tokens": tokens,
}
json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
sys.stdout.write("\n")
PY
venv/bin/python sign.py jose.json > "$out"
echo "wrote $out with $(grep -c '"token"' "$out") tokens"

// Proofs made by panva's `dpop` (npm), an implementation we did not write, as test vectors
// for token::dpop:  node foreign-proofs.mjs OUT.json
// Each vector says the request the proof comes with, the verifier's clock (the proof's iat),
// what the verifier must answer (`accept`, or the DpopError variant), and the key's RFC 7638
// thumbprint as jose computes it.
import fs from 'node:fs';
import crypto from 'node:crypto';
import * as DPoP from 'dpop';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose';
import { NONCE_KEY, NONCE_PERIOD_S, serverNonce } from './nonce.mjs';

const out = process.argv[2];
if (!out) { console.error('usage: node foreign-proofs.mjs OUT.json'); process.exit(2); }
const ORIGIN = 'https://api.example.com';
const token = (n) => `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'alice', n })).toString('base64url')}.${crypto.randomBytes(32).toString('base64url')}`;

const vectors = [];
async function add(name, proof, request, expect, nonce) {
  const jwk = decodeProtectedHeader(proof).jwk;
  vectors.push({
    name: `dpop ${name}`,
    proof,
    method: request.method,
    origin: ORIGIN,
    path: request.path,
    access_token: request.accessToken ?? null,
    now_ms: decodeJwt(proof).iat * 1000,
    nonce_key: nonce ? NONCE_KEY : null,
    nonce_period_s: nonce ? NONCE_PERIOD_S : null,
    expect,
    jkt: await calculateJwkThumbprint(jwk, 'sha256'),
  });
}

for (const alg of ['ES256', 'Ed25519']) {
  const keypair = await DPoP.generateKeyPair(alg);
  const a = token(1);
  const b = token(2);
  await add(`${alg} login`, await DPoP.generateProof(keypair, `${ORIGIN}/api/auth/login`, 'POST'),
    { method: 'POST', path: '/api/auth/login' }, 'accept');
  await add(`${alg} resource with ath, query in htu`,
    await DPoP.generateProof(keypair, `${ORIGIN}/api/me?page=2`, 'GET', undefined, a),
    { method: 'GET', path: '/api/me', accessToken: a }, 'accept');
  const now = Date.now();
  await add(`${alg} with a server nonce`,
    await DPoP.generateProof(keypair, `${ORIGIN}/api/me`, 'GET', serverNonce(now), a),
    { method: 'GET', path: '/api/me', accessToken: a }, 'accept', true);
  await add(`${alg} without the nonce the server requires`,
    await DPoP.generateProof(keypair, `${ORIGIN}/api/me`, 'GET', undefined, a),
    { method: 'GET', path: '/api/me', accessToken: a }, 'NonceRequired', true);
  await add(`${alg} for another method`, await DPoP.generateProof(keypair, `${ORIGIN}/api/me`, 'POST', undefined, a),
    { method: 'GET', path: '/api/me', accessToken: a }, 'MethodMismatch');
  await add(`${alg} for another URL`, await DPoP.generateProof(keypair, `${ORIGIN}/api/admin`, 'GET', undefined, a),
    { method: 'GET', path: '/api/me', accessToken: a }, 'UriMismatch');
  await add(`${alg} for another access token`, await DPoP.generateProof(keypair, `${ORIGIN}/api/me`, 'GET', undefined, a),
    { method: 'GET', path: '/api/me', accessToken: b }, 'AccessTokenMismatch');
}

const pkg = JSON.parse(fs.readFileSync(new URL('./node_modules/dpop/package.json', import.meta.url), 'utf8'));
fs.writeFileSync(out, `${JSON.stringify({ source: `dpop ${pkg.version} (npm, panva), Node ${process.version}`, vectors }, null, 2)}\n`);
console.log(`dpop ${pkg.version}: ${vectors.length} vectors -> ${out}`);

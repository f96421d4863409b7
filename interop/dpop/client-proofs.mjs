// Proofs made by our browser client (client/token-manager.js, on node's WebCrypto), checked by
// jose, a verifier we did not write: jwtVerify with the proof's embedded jwk, typ dpop+jwt,
// the algorithms, iat; then htm, htu, ath and the RFC 7638 thumbprint by jose's
// calculateJwkThumbprint. Also written out as test vectors for token::dpop and for
// vectors.py (Python `cryptography`).
//   node client-proofs.mjs CLIENT_MODULE OUT.json
import fs from 'node:fs';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify } from 'jose';

const [clientPath, out] = process.argv.slice(2);
if (!clientPath || !out) { console.error('usage: node client-proofs.mjs CLIENT_MODULE OUT.json'); process.exit(2); }
const { createDpopProof, dpopThumbprint, generateDpopKey } = await import(pathToFileURL(clientPath).href);

const ORIGIN = 'https://api.example.com';
const token = `eyJhbGciOiJIUzI1NiJ9.${Buffer.from('{"sub":"alice"}').toString('base64url')}.${crypto.randomBytes(32).toString('base64url')}`;
const ath = crypto.createHash('sha256').update(token).digest('base64url');
let failed = 0;
const vectors = [];
for (const algorithm of ['ES256', 'Ed25519']) {
  const key = await generateDpopKey(algorithm);
  for (const [method, url, path, withToken] of [
    ['POST', `${ORIGIN}/api/auth/login`, '/api/auth/login', false],
    ['GET', `${ORIGIN}/api/me?page=2#top`, '/api/me', true],
  ]) {
    const proof = await createDpopProof(key, { htm: method, htu: url, accessToken: withToken ? token : undefined });
    const name = `client ${algorithm} ${method} ${path}`;
    try {
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt', algorithms: ['ES256', 'EdDSA', 'Ed25519'], maxTokenAge: '60s', clockTolerance: 5,
      });
      const problems = [];
      if (payload.htm !== method) problems.push(`htm ${payload.htm}`);
      if (payload.htu !== `${ORIGIN}${path}`) problems.push(`htu ${payload.htu}`);
      if (withToken ? payload.ath !== ath : 'ath' in payload) problems.push(`ath ${payload.ath}`);
      if (typeof payload.jti !== 'string' || payload.jti.length < 16) problems.push('jti');
      if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in protectedHeader.jwk)) problems.push('private jwk');
      const jkt = await calculateJwkThumbprint(protectedHeader.jwk, 'sha256');
      if (jkt !== await dpopThumbprint(key.jwk)) problems.push('thumbprint');
      if (problems.length) throw new Error(problems.join(', '));
      console.log(`jose ${name}: verified (alg ${protectedHeader.alg}, jkt ${jkt}) ok`);
      vectors.push({ name, proof, method, origin: ORIGIN, path, access_token: withToken ? token : null,
        now_ms: payload.iat * 1000, nonce_key: null, nonce_period_s: null, expect: 'accept', jkt });
    } catch (e) {
      failed += 1;
      console.log(`jose ${name}: REFUSED (${e.code ?? e.name}: ${e.message}) UNEXPECTED`);
    }
  }
}
fs.writeFileSync(out, `${JSON.stringify({ source: `client/token-manager.js on Node ${process.version} WebCrypto`, vectors }, null, 2)}\n`);
if (failed) { console.error(`jose: ${failed} of our proofs refused`); process.exit(1); }

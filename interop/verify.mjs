// Node `jose` (createRemoteJWKSet + jwtVerify) against the server's JWKS, fed the tokens
// interop/run.sh made:  node verify.mjs JWKS_URL CASES_FILE
// Each line of CASES_FILE is `NAME EXPECT TOKEN`, EXPECT `accept:SUB` or `reject`. Also checks,
// independently, that every published `kid` is the key's RFC 7638 thumbprint. Exits 1 when any
// verdict differs from the expected one, 2 on a set-up error.
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, casesFile] = process.argv.slice(2);
if (!jwksUrl || !casesFile) {
  console.error('usage: node verify.mjs JWKS_URL CASES_FILE');
  process.exit(2);
}

let failed = 0;
const res = await fetch(jwksUrl);
if (res.status !== 200) {
  console.error(`jose: GET ${jwksUrl} answered ${res.status}`);
  process.exit(2);
}
for (const jwk of (await res.json()).keys) {
  const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
  const ok = thumbprint === jwk.kid && jwk.use === 'sig' && !('d' in jwk) && !('k' in jwk);
  console.log(`jose jwks ${jwk.alg} kid ${jwk.kid}: RFC 7638 thumbprint ${ok ? 'ok' : `UNEXPECTED (${thumbprint})`}`);
  if (!ok) failed++;
}

const JWKS = createRemoteJWKSet(new URL(jwksUrl));
const lines = readFileSync(casesFile, 'utf8').split('\n').filter((l) => l.trim());
if (lines.length === 0) {
  console.error('jose: no cases');
  process.exit(2);
}
for (const line of lines) {
  const [name, expect, token] = line.trim().split(/\s+/);
  let verdict;
  let sub = '';
  try {
    const { payload } = await jwtVerify(token, JWKS, { typ: 'at+jwt', clockTolerance: 0 });
    verdict = 'accepted';
    sub = payload.sub;
  } catch (e) {
    verdict = `refused (${e.code ?? e.name})`;
  }
  const ok = expect.startsWith('accept:')
    ? verdict === 'accepted' && sub === expect.slice('accept:'.length)
    : expect === 'reject' && verdict !== 'accepted';
  console.log(`jose ${name}: ${verdict}${sub ? `, sub ${sub}` : ''} ${ok ? 'ok' : 'UNEXPECTED'}`);
  if (!ok) failed++;
}
if (failed) {
  console.error(`jose: ${failed} unexpected`);
  process.exit(1);
}

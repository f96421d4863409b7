// The server nonce of token::dpop (src/token/dpop/nonce.rs), written again from its
// documented form: base64url(period || HMAC-SHA256(key, "tjs-dpop-nonce-v1" || period)[..16]),
// `period` the 8-byte big-endian count of whole periods since the epoch.
import crypto from 'node:crypto';

export const NONCE_KEY = 'interop-nonce-key-interop-nonce-key-!!';
export const NONCE_PERIOD_S = 300;

export function serverNonce(nowMs, key = NONCE_KEY, periodS = NONCE_PERIOD_S) {
  const period = Buffer.alloc(8);
  period.writeBigUInt64BE(BigInt(Math.floor(nowMs / (periodS * 1000))));
  const mac = crypto.createHmac('sha256', key).update('tjs-dpop-nonce-v1').update(period).digest();
  return Buffer.concat([period, mac.subarray(0, 16)]).toString('base64url');
}

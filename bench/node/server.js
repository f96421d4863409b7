// express + express-jwt (jsonwebtoken underneath): GET /api/me -> {"userId": sub}.
//
//   node server.js PORT            the secret as a string, as express-jwt's README configures it
//   node server.js PORT keyobject  the secret as a crypto KeyObject, made once (the tuned setup:
//                                  jsonwebtoken 9 otherwise tries createPublicKey() on the
//                                  string, and fails, on every request before falling back to
//                                  createSecretKey())
//
// The secret is the one every contender uses (bench/src/lib.rs).
'use strict';
const crypto = require('node:crypto');
const express = require('express');
const { expressjwt } = require('express-jwt');

const SECRET = 'bench-secret-bench-secret-bench-secret!!';
const port = Number(process.argv[2] || 0);
const secret = process.argv[3] === 'keyobject' ? crypto.createSecretKey(Buffer.from(SECRET)) : SECRET;

const app = express();
app.disable('x-powered-by');
app.get(
  '/api/me',
  expressjwt({ secret, algorithms: ['HS256'] }),
  (req, res) => res.json({ userId: req.auth.sub }),
);
app.use((err, req, res, next) => {
  if (err.name === 'UnauthorizedError') return res.status(401).json({ error: 'invalid_token' });
  next(err);
});
const server = app.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

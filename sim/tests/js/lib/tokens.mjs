// Operator tokens (HS256 JWTs), shared by the backends of this folder.
//
// `sub` is the operator id written as a decimal string, `name` the display name (sanitized
// here), `exp` required; `nbf` and `iat` optional. `lax` loosens the check for
// chat-server.mjs's deliberate weaknesses only; cluster-server.mjs never passes it.
import { createHmac, timingSafeEqual } from "node:crypto";

import { cleanName } from "./sanitize.mjs";

const JWT_LEEWAY_SECS = 5; // as the reference relay: clock skew tolerated on exp and nbf
const B64URL = /^[A-Za-z0-9_-]*$/;

function b64url(part) {
  if (!B64URL.test(part) || part.length % 4 === 1) return null;
  return Buffer.from(part, "base64url");
}

function jsonPart(part) {
  const bytes = b64url(part);
  if (bytes === null) return null;
  try {
    const v = JSON.parse(bytes.toString("utf8"));
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

export const isU64 = (v) => Number.isSafeInteger(v) && v >= 0;
export const absent = (v) => v === undefined || v === null;

// Returns {operatorId, name} or {error}.
//   secret                the HS256 secret
//   lax.algNone           accept unsigned tokens (chat-server's WEAK 1, alg_none)
//   lax.noExpiry          never compare `exp` with the clock (chat-server's WEAK 2, no_expiry)
export function verifyToken(token, secret, lax = {}) {
  const parts = token.split(".");
  if (parts.length !== 3) return { error: "malformed token: expected three dot-separated parts" };
  const header = jsonPart(parts[0]);
  if (header === null || typeof header.alg !== "string") return { error: "malformed token: bad header" };
  // WEAK 1 (alg_none): an unsigned token ("alg":"none") skips the signature check, so any
  // signature part, even an empty one, is accepted
  const unsigned = lax.algNone === true && header.alg === "none";
  if (!unsigned) {
    if (header.alg !== "HS256") return { error: `unsupported algorithm ${JSON.stringify(header.alg)}, only HS256 is accepted` };
    const signature = b64url(parts[2]);
    if (signature === null) return { error: "malformed token: signature is not base64url" };
    const expected = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      return { error: "bad signature" };
    }
  }
  const claims = jsonPart(parts[1]);
  if (
    claims === null ||
    typeof claims.sub !== "string" ||
    typeof claims.name !== "string" ||
    !isU64(claims.exp) ||
    !(absent(claims.nbf) || isU64(claims.nbf)) ||
    !(absent(claims.iat) || isU64(claims.iat))
  ) {
    return { error: "malformed token: claims need sub, name and exp" };
  }
  const now = Math.floor(Date.now() / 1000);
  // WEAK 2 (no_expiry): `exp` is never compared with the clock, so expired tokens are accepted
  if (lax.noExpiry !== true && now > claims.exp + JWT_LEEWAY_SECS) return { error: "token expired" };
  if (!absent(claims.nbf) && claims.nbf > now + JWT_LEEWAY_SECS) return { error: "token not valid yet" };
  if (!/^\+?[0-9]+$/.test(claims.sub) || !Number.isSafeInteger(Number(claims.sub))) {
    return { error: `subject ${JSON.stringify(claims.sub)} is not a numeric operator id` };
  }
  return { operatorId: Number(claims.sub), name: cleanName(claims.name) };
}

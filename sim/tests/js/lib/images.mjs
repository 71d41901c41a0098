// Images, shared by the backends of this folder: `mimeType` one of IMAGE_MIME_TYPES, the
// image a data URL of that type or bare base64, its decoded size within the limit, its
// bytes starting like that type. `lax` loosens it for chat-server.mjs's deliberate
// weaknesses only; cluster-server.mjs never passes it.

export const IMAGE_MIME_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

// Standard alphabet, padding optional but correct when present, canonical trailing bits.
function decodeBase64(body) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) return null;
  const bare = body.replace(/=+$/, "");
  if (bare.length !== body.length && body.length % 4 !== 0) return null;
  const rem = bare.length % 4;
  if (rem === 1) return null;
  if (rem > 1) {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const last = alphabet.indexOf(bare[bare.length - 1]);
    if (last & (rem === 2 ? 0x0f : 0x03)) return null;
  }
  return Buffer.from(bare, "base64");
}

function startsWith(bytes, prefix) {
  if (bytes.length < prefix.length) return false;
  for (let k = 0; k < prefix.length; k += 1) if (bytes[k] !== prefix[k]) return false;
  return true;
}

const ascii = (s) => Array.from(s, (c) => c.charCodeAt(0));

function contentMatches(mime, bytes) {
  switch (mime) {
    case "image/png":
      return startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    case "image/jpeg":
      return startsWith(bytes, [0xff, 0xd8, 0xff]);
    case "image/gif":
      return startsWith(bytes, ascii("GIF87a")) || startsWith(bytes, ascii("GIF89a"));
    case "image/webp":
      return bytes.length >= 12 && startsWith(bytes, ascii("RIFF")) && startsWith(bytes.subarray(8), ascii("WEBP"));
    default:
      return false;
  }
}

// Returns {size} (decoded bytes) or {code, message}.
//   maxImageBytes         largest decoded image
//   lax.imageClaims       trust the claimed type (chat-server's WEAK 5, image_claims)
export function validateImage(image, mimeType, maxImageBytes, lax = {}) {
  const declared = typeof mimeType === "string" ? mimeType : "";
  if (lax.imageClaims === true) {
    // WEAK 5 (image_claims): any claimed type starting with image/ is accepted (image/svg+xml
    // too), not just IMAGE_MIME_TYPES
    if (!declared.startsWith("image/")) {
      return { code: "invalid_payload", message: `mimeType ${JSON.stringify(declared)} is not an image/ type` };
    }
  } else if (!IMAGE_MIME_TYPES.has(declared)) {
    return { code: "invalid_payload", message: `mimeType ${JSON.stringify(declared)} is not one of image/png, image/jpeg, image/gif, image/webp` };
  }
  let body = image;
  if (image.startsWith("data:")) {
    const comma = image.indexOf(",");
    if (comma < 0) return { code: "invalid_payload", message: "image is not base64: data URL without a comma" };
    const media = image.slice(5, comma);
    if (!media.endsWith(";base64")) return { code: "invalid_payload", message: "image is not base64: data URL is not ;base64" };
    const type = media.slice(0, -";base64".length);
    if (type !== declared) {
      return { code: "invalid_payload", message: `data URL type ${JSON.stringify(type)} differs from mimeType ${JSON.stringify(declared)}` };
    }
    body = image.slice(comma + 1);
  }
  const estimated = Math.floor(body.length / 4) * 3;
  if (estimated > maxImageBytes + 3) {
    return { code: "payload_too_large", message: `image of ${estimated} bytes is over the ${maxImageBytes}-byte limit` };
  }
  const bytes = decodeBase64(body);
  if (bytes === null) return { code: "invalid_payload", message: "image is not base64: invalid base64" };
  if (bytes.length > maxImageBytes) {
    return { code: "payload_too_large", message: `image of ${bytes.length} bytes is over the ${maxImageBytes}-byte limit` };
  }
  // WEAK 5 (image_claims): the bytes are never checked against the claimed type (no magic bytes)
  if (lax.imageClaims !== true && !contentMatches(declared, bytes)) {
    return { code: "invalid_payload", message: `image content is not ${declared}` };
  }
  return { size: bytes.length };
}

// Startup of the backends of this folder: the port argument and the environment, read
// strictly. Anything malformed exits with status 2 and one line on stderr, before the
// server listens.

// `fail(message)` for `program`: writes `program: message` on stderr, exits 2.
export function failer(program) {
  return (message) => {
    process.stderr.write(`${program}: ${message}\n`);
    process.exit(2);
  };
}

// The non-negative integer in env `name`, `fallback` when unset or empty.
export function envInt(fail, name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) fail(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

// The port in argv[2] (0: a free one), else a usage line and exit 2.
export function portArg(fail, usage) {
  const arg = process.argv[2];
  if (arg === undefined || !/^\d+$/.test(arg) || Number(arg) > 65535) fail(`usage: ${usage}`);
  return Number(arg);
}

// The names in comma-separated env `name` (blanks ignored), each one of `known` (`what`
// it names, for the error), or `all` for every one of `all`; anything else exits 2.
export function envNames(fail, name, what, known, all = known) {
  const chosen = new Set();
  for (const item of (process.env[name] ?? "").split(",")) {
    const each = item.trim();
    if (each === "") continue;
    if (each === "all") {
      for (const n of all) chosen.add(n);
    } else if (known.includes(each)) {
      chosen.add(each);
    } else {
      fail(`${name}: unknown ${what} ${JSON.stringify(each)}, expected all or a comma-separated list of ${known.join(", ")}`);
    }
  }
  return chosen;
}

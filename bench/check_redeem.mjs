// Redeem every request_uri in a file exactly once and count the statuses; exact, unlike a
// time-bounded wrk run. Used by bench/load.sh after the capacity flood to prove that no stored
// handle was lost.
//
//   node bench/check_redeem.mjs http://127.0.0.1:PORT FILE [EXPECT=303]
//
// Prints `CHECK handles=N ok=N bad=N codes=303:N,...` and exits 1 if any status differs.
import { readFileSync } from 'node:fs';

const [base, file, expectArg] = process.argv.slice(2);
if (!base || !file) {
  console.error('usage: node check_redeem.mjs BASE_URL FILE [EXPECT]');
  process.exit(2);
}
const expect = Number(expectArg ?? 303);
const handles = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
const codes = new Map();
let next = 0;

async function worker() {
  while (next < handles.length) {
    const handle = handles[next++];
    const url = `${base}/as/authorize?client_id=web-app&request_uri=${encodeURIComponent(handle)}`;
    let status;
    try {
      const res = await fetch(url, { redirect: 'manual' });
      await res.arrayBuffer();
      status = res.status;
    } catch (err) {
      status = `error(${err.cause?.code ?? err.message})`;
    }
    codes.set(status, (codes.get(status) ?? 0) + 1);
  }
}

await Promise.all(Array.from({ length: 16 }, worker));
const ok = codes.get(expect) ?? 0;
const list = [...codes].map(([s, n]) => `${s}:${n}`).sort().join(',');
console.log(`CHECK handles=${handles.length} ok=${ok} bad=${handles.length - ok} codes=${list}`);
process.exit(ok === handles.length ? 0 : 1);
